#include "host/platform/stopper_threads.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <cstdio>

#include "host/platform/futex.h"

namespace ucode::platform {
namespace {

// Raises the calling thread to SCHED_FIFO `priority` for a scope unless it already runs
// a real-time policy (then whoever raised it decides when it drops back).
class RealtimeScope {
 public:
  explicit RealtimeScope(int priority) {
    policy_ = sched_getscheduler(0);
    if (policy_ == SCHED_FIFO || policy_ == SCHED_RR) return;
    sched_getparam(0, &param_);
    sched_param p{};
    p.sched_priority = priority;
    raised_ = sched_setscheduler(0, SCHED_FIFO, &p) == 0;
  }
  ~RealtimeScope() {
    if (raised_) sched_setscheduler(0, policy_, &param_);
  }
  RealtimeScope(const RealtimeScope&) = delete;
  RealtimeScope& operator=(const RealtimeScope&) = delete;

 private:
  int policy_ = SCHED_OTHER;
  sched_param param_{};
  bool raised_ = false;
};

}  // namespace

StopperThreads::StopperThreads(int count) {
  // Every signal blocked in the new threads (they inherit the creator's mask): a stopper
  // must never run a handler or take a process-directed signal meant for another thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  count_ = static_cast<uint32_t>(count);
  threads_.reserve(count);
  for (int i = 0; i < count; ++i) threads_.emplace_back([this, i] { Main(i); });
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // Return only once every thread sleeps on generation_, so that no thread's first
  // scheduling happens inside a rendezvous.
  FutexWaitUntil(
      &started_, [this](uint32_t n) { return n >= count_; }, kNoDeadline);
}

StopperThreads::~StopperThreads() {
  stopping_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  FutexWakeAll(&generation_);
  for (std::thread& t : threads_) t.join();
}

void StopperThreads::Main(int index) {
  char name[16];
  std::snprintf(name, sizeof(name), "ucode-stop/%d", index);
  pthread_setname_np(pthread_self(), name);
  sched_param p{};
  p.sched_priority = kStopperRtPriority;
  sched_setscheduler(0, SCHED_FIFO, &p);  // best effort: needs CAP_SYS_NICE
  uint32_t seen = 0;                      // generation_ when the constructor ran
  if (started_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
    FutexWakeAll(&started_);
  }
  for (;;) {
    FutexWaitUntil(
        &generation_, [seen](uint32_t g) { return g != seen; }, kNoDeadline);
    seen = generation_.load(std::memory_order_acquire);
    if (stopping_.load(std::memory_order_acquire)) return;
    (*work_)(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) FutexWakeAll(&pending_);
  }
}

void StopperThreads::RunOnEach(absl::FunctionRef<void(int)> work) {
  RealtimeScope rt(kStopperRtPriority);
  work_ = &work;
  pending_.store(static_cast<uint32_t>(threads_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);  // publishes work_ and pending_
  FutexWakeAll(&generation_);
  FutexWaitUntil(
      &pending_, [](uint32_t n) { return n == 0; }, kNoDeadline);
  work_ = nullptr;
}

StopperThreads::Lease StopperThreads::Acquire(int count) {
  static std::mutex mu;
  static std::unique_ptr<StopperThreads> shared;  // joined at exit
  std::unique_lock<std::mutex> lock(mu);
  if (shared == nullptr || shared->size() != count) {
    shared.reset();
    shared = std::make_unique<StopperThreads>(count);
  }
  return Lease(std::move(lock), shared.get());
}

}  // namespace ucode::platform
