// HeldEvents: the orchestrator's progress events, with those of the held window (PARKED,
// ACTIVATED, GUEST_VIEWS_SET, from PARKED to RELEASED) held back and delivered together
// with RELEASED, so that printing a line or waking a watcher never lengthens the
// blackout. ucodectl's progress lines and ucoded's event relay both go through it.
//
// Threads: Emit and Flush from any thread; `deliver` runs under the lock, in emit order,
// and must not call back into this object.
#ifndef UCODE_VMM_INVENTORY_HELD_EVENTS_H_
#define UCODE_VMM_INVENTORY_HELD_EVENTS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/orchestrator/report.h"

namespace ucode::inventory {

class HeldEvents {
 public:
  struct Event {
    orchestrator::Step step;
    std::string message;
    absl::Time emitted;  // when Emit was called, not when delivered
  };
  using Deliver = std::function<void(const Event&)>;

  // With `hold` false every event is delivered at once.
  explicit HeldEvents(Deliver deliver, bool hold = true)
      : deliver_(std::move(deliver)), hold_(hold) {}
  HeldEvents(const HeldEvents&) = delete;
  HeldEvents& operator=(const HeldEvents&) = delete;

  void Emit(orchestrator::Step step, absl::string_view message);
  // Delivers what is held (an operation that ended inside the window).
  void Flush();

 private:
  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Deliver deliver_;
  const bool hold_;
  absl::Mutex mu_;
  std::vector<Event> held_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ucode::inventory

#endif  // UCODE_VMM_INVENTORY_HELD_EVENTS_H_
