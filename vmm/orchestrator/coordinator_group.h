// CoordinatorGuestGroup: our own ucode-vmm fleet as a GuestGroup, over the rendezvous
// coordinator (vmm/rendezvous/coordinator.h). Park and Release go through the shared
// rendezvous area (no socket round trip per step); SetRevision writes nothing: the
// revision travels with the release, so each vCPU wakes once. Guest views and
// measurements come from the guest records each VMM reads out of guest memory.
//
// Borrows the coordinator (the caller starts it and shuts it down, e.g. from a signal
// path); like the coordinator, not thread-safe: one caller at a time.
#ifndef UCODE_VMM_ORCHESTRATOR_COORDINATOR_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_COORDINATOR_GROUP_H_

#include <optional>
#include <string>
#include <vector>

#include "vmm/orchestrator/guest_group.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::orchestrator {

class CoordinatorGuestGroup final : public GuestGroup {
 public:
  // `specs` are the ones `coordinator` was started with, in the same order.
  CoordinatorGuestGroup(rendezvous::Coordinator& coordinator,
                        std::vector<rendezvous::VmSpec> specs);

  [[nodiscard]] std::string kind() const override { return "ucode-vmm"; }
  [[nodiscard]] std::vector<std::string> names() const override;
  [[nodiscard]] int total_vcpus() const override { return coordinator_.total_vcpus(); }

  [[nodiscard]] absl::Status Prepare(absl::Duration timeout) override;
  [[nodiscard]] absl::Status Park(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult SetRevision(uint32_t revision, absl::Duration deadline) override;
  [[nodiscard]] absl::Status Release(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult VerifyGuestViews(uint32_t revision,
                                                 absl::Duration timeout) override;
  [[nodiscard]] std::vector<VmReport> Report() override;
  [[nodiscard]] std::optional<absl::Duration> LastReleaseAll() const override {
    return coordinator_.last_release_all();
  }
  [[nodiscard]] std::optional<absl::Duration> deadman() const override {
    return coordinator_.deadman();
  }

 private:
  GuestViewResult Result() const;
  [[nodiscard]] GuestViewResult ViewAfterRelease() const override { return Result(); }

  rendezvous::Coordinator& coordinator_;
  std::vector<rendezvous::VmSpec> specs_;
  std::vector<VmViewOutcome> views_;  // per VM, the latest view outcome
  std::optional<uint32_t> pending_revision_;  // SetRevision() -> the next Release()
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_COORDINATOR_GROUP_H_
