#include "vmm/inventory/cancel_on_signal.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace ucode::inventory {

struct CancelOnSignal::State {
  sigset_t set;
  std::string who;
  std::string notice;
  absl::Duration grace;
  std::atomic<bool> cancelled{false};
  absl::Notification main_done;
  absl::Mutex mu;
  std::vector<pid_t> pids ABSL_GUARDED_BY(mu);
};

CancelOnSignal::CancelOnSignal(std::string who, std::string notice, absl::Duration grace)
    : state_(std::make_shared<State>()) {
  State& s = *state_;
  s.who = std::move(who);
  s.notice = std::move(notice);
  s.grace = grace;
  sigemptyset(&s.set);
  sigaddset(&s.set, SIGINT);
  sigaddset(&s.set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &s.set, nullptr);
  std::thread([state = state_] {
    int sig = 0;
    if (sigwait(&state->set, &sig) != 0) return;
    state->cancelled.store(true);
    std::fprintf(stderr, "\n%s: %s: %s\n", state->who.c_str(), strsignal(sig),
                 state->notice.c_str());
    if (state->grace == absl::InfiniteDuration()) return;
    if (state->main_done.WaitForNotificationWithTimeout(state->grace)) return;
    std::vector<pid_t> pids;
    {
      absl::MutexLock lock(&state->mu);
      pids = state->pids;
    }
    for (pid_t p : pids) kill(p, SIGKILL);
    for (pid_t p : pids) waitpid(p, nullptr, 0);
    _exit(kExitInterrupted);
  }).detach();
}

bool CancelOnSignal::cancelled() const { return state_->cancelled.load(); }

void CancelOnSignal::Publish(std::vector<pid_t> pids) {
  absl::MutexLock lock(&state_->mu);
  state_->pids = std::move(pids);
}

void CancelOnSignal::MainDone() { state_->main_done.Notify(); }

}  // namespace ucode::inventory
