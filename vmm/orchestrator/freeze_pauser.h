// FreezePauser: holds QEMU domains with the kernel's cgroup freezer (vmm/freeze).
//
// Prepare finds each domain's QEMU process (the one whose command line carries the
// domain's UUID: no monitor passthrough, which would taint the domain), its vCPU threads
// by name ("CPU n/KVM", "CPU n/TCG"), checks their number against libvirt's vCPU count,
// plans the mechanism per thread (cgroup_plan.h), sets up our cgroups and starts the guard
// process. Nothing is frozen; any mismatch fails the whole Prepare, naming the domain.
// A domain already paused (by libvirt or someone else) is left out and reported
// paused_by_other by Pause.
//
// Pause arms the guard and freezes every domain at once (Freezer::Freeze: all or nothing
// under the deadline). Resume thaws and disarms. The destructor puts moved threads back,
// removes our cgroups and ends the guard. QEMU's main loop, I/O threads and monitor keep
// running: libvirt sees the domain "running" throughout and raises no event.
#ifndef UCODE_VMM_ORCHESTRATOR_FREEZE_PAUSER_H_
#define UCODE_VMM_ORCHESTRATOR_FREEZE_PAUSER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/freeze/freeze_guard.h"
#include "vmm/freeze/freezer.h"
#include "vmm/orchestrator/domain_pauser.h"

namespace ucode::orchestrator {

struct FreezeOptions {
  std::string proc_root = "/proc";
  std::string mountinfo_path = "/proc/self/mountinfo";
  // The guard thaws a hold that lasts longer than this (the dead-man deadline).
  absl::Duration hold_limit = absl::Seconds(2);
};

class FreezePauser final : public DomainPauser {
 public:
  explicit FreezePauser(FreezeOptions options = {}) : options_(std::move(options)) {}
  ~FreezePauser() override;

  [[nodiscard]] std::string name() const override { return "freeze"; }
  [[nodiscard]] absl::Status Prepare(absl::Span<const libvirt::Domain> domains,
                                     absl::Span<const int> vcpus) override;
  [[nodiscard]] std::vector<PauseOutcome> Pause(absl::Span<const libvirt::Domain> domains,
                                                absl::Duration deadline) override;
  [[nodiscard]] std::vector<PauseOutcome> Resume(absl::Span<const libvirt::Domain> domains,
                                                 const std::vector<bool>& which,
                                                 absl::Duration deadline) override;
  [[nodiscard]] int TakeDeadmanReleases() override;
  [[nodiscard]] std::optional<absl::Duration> deadman() const override {
    return options_.hold_limit;
  }
  [[nodiscard]] std::string Describe() const override;

 private:
  FreezeOptions options_;
  // Per domain: its index among the freezer's targets, or nullopt (paused by someone else).
  std::vector<std::optional<size_t>> target_of_;
  std::unique_ptr<freeze::Freezer> freezer_;
  std::optional<freeze::FreezeGuard> guard_;
};

// Whether this host's kernel offers a freezer at all (cgroup2 or the v1 freezer mounted),
// and if not, why: what --pause auto falls back to suspend for.
[[nodiscard]] absl::Status KernelFreezerAvailable(const std::string& mountinfo_path);

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_FREEZE_PAUSER_H_
