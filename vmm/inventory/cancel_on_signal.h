// CancelOnSignal: SIGINT/SIGTERM turned into a cancellation request, for the ucodectl
// commands that drive guests. The signals are blocked in every thread and taken by one
// watcher thread (sigwait): no async-signal-safety puzzles in a handler. The first one
// prints "\n<who>: <signal>: <notice>" on stderr and sets cancelled(); the operation
// checks it between steps (a rendezvous under way finishes and releases first).
//
// With a finite `grace`: if the main thread has not called MainDone() that long after the
// signal, the watcher SIGKILLs and reaps the published pids itself and exits 130.
#ifndef UCODE_VMM_INVENTORY_CANCEL_ON_SIGNAL_H_
#define UCODE_VMM_INVENTORY_CANCEL_ON_SIGNAL_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ucode::inventory {

inline constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as shells report it

class CancelOnSignal {
 public:
  // Construct before any other thread starts, so that every thread inherits the mask.
  CancelOnSignal(std::string who, std::string notice,
                 absl::Duration grace = absl::InfiniteDuration());
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;

  [[nodiscard]] bool cancelled() const;
  // The processes to kill if the grace runs out.
  void Publish(std::vector<pid_t> pids);
  void MainDone();

 private:
  struct State;  // shared with the detached watcher thread, which may outlive this object
  std::shared_ptr<State> state_;
};

}  // namespace ucode::inventory

#endif  // UCODE_VMM_INVENTORY_CANCEL_ON_SIGNAL_H_
