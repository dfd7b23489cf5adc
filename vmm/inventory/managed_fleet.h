// ManagedFleet: a running ucode-vmm fleet. The VMs of one VmmFleetSpec ("vm0".."vmN-1")
// behind one rendezvous::Coordinator, their pids and logs as they are now, and the
// orchestrator group that parks them. `ucodectl demo` runs one for a command's life;
// ucoded runs one for its own and records it (vmm_fleet.h) for the next instance.
//
// Threads: Start, Repair, Shutdown and group() (the orchestrator driving it) on one
// thread at a time, the caller's; pids() and States() on any thread.
#ifndef UCODE_VMM_INVENTORY_MANAGED_FLEET_H_
#define UCODE_VMM_INVENTORY_MANAGED_FLEET_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "vmm/inventory/vmm_fleet.h"
#include "vmm/orchestrator/coordinator_group.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::inventory {

class ManagedFleet {
 public:
  // Starts the VMs at `initial_revision` (the host's) and waits until each one runs. Each
  // VMM logs to `<options.log_dir>/<name>.log`: a private (0700) directory, since the
  // VMMs open their logs with O_EXCL | O_NOFOLLOW (vmm_process.cc).
  static absl::StatusOr<std::unique_ptr<ManagedFleet>> Start(
      const VmmFleetSpec& spec, uint32_t initial_revision,
      const rendezvous::CoordinatorOptions& options);
  ~ManagedFleet();  // Shutdown()
  ManagedFleet(const ManagedFleet&) = delete;
  ManagedFleet& operator=(const ManagedFleet&) = delete;

  // QUIT every VMM (SIGKILL after a grace period) and reap it. Idempotent.
  absl::Status Shutdown() { return coordinator_->Shutdown(); }

  [[nodiscard]] const std::vector<rendezvous::VmSpec>& specs() const { return specs_; }
  [[nodiscard]] orchestrator::GuestGroup& group() { return group_; }
  // Current pids: a VMM restarted by Repair has a new one.
  [[nodiscard]] std::vector<pid_t> pids() const;
  // VmmState of each VM, in specs() order.
  [[nodiscard]] std::vector<std::string> States() const;
  // Name, pid and log of each VM, as vmm_fleet.h records them.
  [[nodiscard]] std::vector<FleetRecordEntry> Record() const;

  // Before an operation: a VMM that is stopped (SIGSTOP or a tracer: its vCPUs cannot
  // park) refuses it by name, FAILED_PRECONDITION; one that died is reaped and restarted
  // at `revision`. Returns what it did, one line ("" if nothing).
  absl::StatusOr<std::string> Repair(uint32_t revision);

 private:
  ManagedFleet(std::vector<rendezvous::VmSpec> specs,
               std::unique_ptr<rendezvous::Coordinator> coordinator, const std::string& log_dir);
  void RefreshPids();

  const std::vector<rendezvous::VmSpec> specs_;
  const std::unique_ptr<rendezvous::Coordinator> coordinator_;
  orchestrator::CoordinatorGuestGroup group_;
  std::vector<std::string> log_paths_;  // per VM; changed by Repair
  mutable absl::Mutex pids_mu_;
  std::vector<pid_t> pids_ ABSL_GUARDED_BY(pids_mu_);
};

}  // namespace ucode::inventory

#endif  // UCODE_VMM_INVENTORY_MANAGED_FLEET_H_
