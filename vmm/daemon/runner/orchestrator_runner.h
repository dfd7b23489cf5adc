// OrchestratorRunner: the UpdateRunner that changes the host. Each Apply is one
// orchestrator::RunUpdate (vmm/orchestrator/update_operation.h) on the daemon's platform
// (emulated or Linux) over the daemon's guest groups; its steps, begin-step hooks and
// cancel map 1:1 onto StepSink / CancelToken. The guests come from vmm/inventory, as
// ucodectl's do; this file translates between them and the proto.
//
// Guests: an optional managed ucode-vmm fleet (`--vmm_fleet=4x2`: real KVM VMs running a
// guest program, for rehearsals on the emulated host; inventory::ManagedFleet), started at
// Create() and kept for the runner's lifetime. The fleet is recorded in
// `<state_dir>/fleet.txt` (name, pid, log) so that the next daemon instance can confirm,
// after a crash, that every VM the dead one had parked released itself (ConfirmGuestsRunning).
// Beside it, optional libvirt domains (`--libvirt_uri`, inventory/libvirt_guests.h): one
// apply may park both. Libvirt domains have no dead-man release, so the domains an apply is about
// to suspend are journaled with BeginStep(STEP_PARKED), and ConfirmGuestsRunning resumes those a
// dead instance left paused and still marked (inventory/libvirt_guests.h).
//
// Threads: Apply/Stage run on the daemon's single operation thread (one at a time);
// DescribeHost/ListGuests on any gRPC thread. The fleet is driven only by Apply/Stage,
// the destructor, and ListGuests when no operation runs. While an operation runs, DescribeHost
// answers from the snapshot taken when it started, so callers never read MSRs during a rendezvous.
#ifndef UCODE_VMM_DAEMON_RUNNER_ORCHESTRATOR_RUNNER_H_
#define UCODE_VMM_DAEMON_RUNNER_ORCHESTRATOR_RUNNER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "host/base/private_files.h"
#include "host/platform/platform.h"
#include "vmm/daemon/operations/update_runner.h"
#include "vmm/inventory/libvirt_guests.h"
#include "vmm/inventory/managed_fleet.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode::daemon {

using inventory::VmmFleetSpec;  // OrchestratorRunnerOptions::fleet

struct OrchestratorRunnerOptions {
  std::unique_ptr<platform::Platform> platform;  // required
  std::optional<VmmFleetSpec> fleet;             // absent: no managed VMs
  std::string vmm_path;                          // empty: rendezvous::FindVmmBinary()
  absl::Duration deadman = absl::Seconds(2);     // each VMM's own release deadline
  // Holds fleet.txt and one `vmm-<daemon pid>` log directory per daemon instance.
  std::string state_dir;
  bool stage = true;
  // Events emitted while vCPUs are held (PARKED, ACTIVATED, GUEST_VIEWS_SET) are handed to
  // the sink together with RELEASED, so that waking watchers never lengthens the blackout.
  bool defer_parked_events = true;
  // Libvirt domains to update too (inventory/libvirt_guests.h); empty URI: none.
  std::string libvirt_uri;
  libvirt::DomainSelector libvirt_domains = {.all_running = true};
  // How libvirt domains are held (freeze where the kernel can, by default); a frozen
  // domain is thawed by the freeze guard after `deadman`, like a VMM's own dead-man.
  orchestrator::PauseMode libvirt_pause = orchestrator::PauseMode::kAuto;
};

class OrchestratorRunner final : public UpdateRunner {
 public:
  // Starts the fleet (if any) and waits until every guest runs; reads the previous
  // instance's fleet record first (for ConfirmGuestsRunning), then replaces it.
  static absl::StatusOr<std::unique_ptr<OrchestratorRunner>> Create(
      OrchestratorRunnerOptions options);
  ~OrchestratorRunner() override;  // stops the fleet
  OrchestratorRunner(const OrchestratorRunner&) = delete;
  OrchestratorRunner& operator=(const OrchestratorRunner&) = delete;

  absl::StatusOr<ucode::v1::UpdateReport> Apply(const ApplyParams& params, StepSink& sink,
                                    const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::UpdateReport> Stage(const StageParams& params, StepSink& sink,
                                    const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::UpdateReport> SyncGuestViews(const SyncParams& params, StepSink& sink,
                                             const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::Host> DescribeHost() override;
  absl::StatusOr<std::vector<ucode::v1::Guest>> ListGuests() override;
  absl::StatusOr<std::string> ConfirmGuestsRunning(const InterruptedOperation& op) override;

  // The managed VMMs' log directory (for the daemon's startup line).
  [[nodiscard]] const std::string& vmm_log_dir() const { return log_dir_; }

 private:
  explicit OrchestratorRunner(OrchestratorRunnerOptions options);
  // Which guests an apply names: the whole fleet or none of it, any selected domains.
  struct GuestSelection {
    bool fleet = false;
    std::vector<std::string> libvirt;  // empty with `all_libvirt`: every selected domain
    bool all_libvirt = false;
  };

  // One orchestrator run (`run`) over the guests an operation names, with the daemon's
  // journal, event and cancel hooks; returns its report.
  using RunFn = std::function<orchestrator::UpdateReport(
      absl::Span<orchestrator::GuestGroup* const>, const orchestrator::UpdateCallbacks&)>;
  absl::StatusOr<ucode::v1::UpdateReport> RunOnGuests(const std::string& operation,
                                          const std::vector<std::string>& guests,
                                          ucode::v1::UpdateMode mode, StepSink& sink,
                                          const CancelToken& cancel, const RunFn& run);
  absl::Status StartFleet();
  // Before each operation, and on ListGuests when no operation runs: ManagedFleet::Repair
  // at the host's revision, fleet.txt rewritten. Returns what it did ("" if nothing).
  absl::StatusOr<std::string> RepairFleet() ABSL_EXCLUSIVE_LOCKS_REQUIRED(fleet_mu_);
  absl::Status RecordFleet();
  // The host described now, kept as the snapshot (unchanged on an error).
  absl::StatusOr<ucode::v1::Host> RefreshSnapshot();
  absl::StatusOr<GuestSelection> SelectGuests(const std::vector<std::string>& guests) const;

  OrchestratorRunnerOptions options_;
  std::unique_ptr<InstanceLock> state_lock_;  // held while the fleet is ours
  std::string log_dir_;
  std::vector<inventory::FleetRecordEntry> previous_fleet_;  // the last instance's record
  std::unique_ptr<inventory::ManagedFleet> fleet_;           // null without a fleet
  std::unique_ptr<inventory::LibvirtGuests> libvirt_;        // null without --libvirt_uri
  // Held by whoever drives fleet_ after Create: an operation (all of it) or a repair.
  absl::Mutex fleet_mu_;

  // Set for the duration of Apply/Stage; `holding` while vCPUs are held.
  std::atomic<bool> busy_{false};
  std::atomic<bool> holding_{false};
  mutable absl::Mutex mu_;
  std::optional<ucode::v1::Host> snapshot_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_RUNNER_ORCHESTRATOR_RUNNER_H_
