#include "vmm/inventory/held_events.h"

#include "absl/time/clock.h"

namespace ucode::inventory {

void HeldEvents::Emit(orchestrator::Step step, absl::string_view message) {
  absl::MutexLock lock(&mu_);
  held_.push_back({step, std::string(message), absl::Now()});
  if (hold_ && step == v1::STEP_PARKED) holding_ = true;
  if (step == v1::STEP_RELEASED) holding_ = false;
  if (!holding_) FlushLocked();
}

void HeldEvents::Flush() {
  absl::MutexLock lock(&mu_);
  FlushLocked();
}

void HeldEvents::FlushLocked() {
  for (const Event& e : held_) deliver_(e);
  held_.clear();
}

}  // namespace ucode::inventory
