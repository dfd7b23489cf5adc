// Cross-group steps: fan out (one thread per group; inline for a single group), then fan
// in, and the guard that keeps any VM from being left parked.
#ifndef UCODE_VMM_ORCHESTRATOR_GROUP_FAN_OUT_H_
#define UCODE_VMM_ORCHESTRATOR_GROUP_FAN_OUT_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

// Runs fn(group, index) for every group concurrently; returns each one's status, in order.
std::vector<absl::Status> FanOut(absl::Span<GuestGroup* const> groups,
                                 const std::function<absl::Status(GuestGroup&, size_t)>& fn);

// Parks every group. All or nothing: if any group fails, every group is released and the
// error (ABORTED) names each failing group's VMs.
absl::Status ParkAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline);

// Releases every group; the error lists every group that failed.
absl::Status ReleaseAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline);

// Sets the guest view in every group; `results` gets each group's outcome.
absl::Status SetRevisionAll(absl::Span<GuestGroup* const> groups, uint32_t revision,
                            absl::Duration deadline, std::vector<GuestViewResult>* results);

// Releases every group on scope exit unless disarmed: no error path leaves a VM parked.
class ReleaseGuard {
 public:
  ReleaseGuard(absl::Span<GuestGroup* const> groups, absl::Duration deadline)
      : groups_(groups), deadline_(deadline) {}
  ReleaseGuard(const ReleaseGuard&) = delete;
  ReleaseGuard& operator=(const ReleaseGuard&) = delete;
  ~ReleaseGuard() {
    if (armed_) ReleaseAll(groups_, deadline_).IgnoreError();
  }
  void Arm() { armed_ = true; }
  void Disarm() { armed_ = false; }

 private:
  absl::Span<GuestGroup* const> groups_;
  absl::Duration deadline_;
  bool armed_ = false;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_GROUP_FAN_OUT_H_
