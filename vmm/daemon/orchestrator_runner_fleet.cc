// OrchestratorRunner's managed ucode-vmm fleet: starting it, recording it in fleet.txt,
// repairing it between operations (a VMM killed or stopped), and listing it.
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/private_files.h"
#include "host/base/status_macros.h"
#include "host/late_load/host_update.h"
#include "vmm/daemon/orchestrator_runner.h"

namespace ucode::daemon {

absl::Status OrchestratorRunner::StartFleet() {
  if (!options_.fleet.has_value()) return absl::OkStatus();
  const std::string& dir = options_.state_dir;
  if (dir.empty()) return absl::InvalidArgumentError("a VMM fleet needs a state directory");
  // Private, and ours alone before anything in it is read or replaced: a second daemon
  // would otherwise delete this one's VM logs and overwrite its fleet record.
  RETURN_IF_ERROR(EnsurePrivateDir(dir, "VMM state directory (--vmm_state_dir)"));
  ASSIGN_OR_RETURN(state_lock_, InstanceLock::Acquire(dir + "/lock", "VMM state directory"));
  std::error_code ec;
  const std::string record = dir + "/fleet.txt";
  ASSIGN_OR_RETURN(previous_fleet_, ReadFleetRecord(record));
  // Keep the previous instance's logs (ConfirmGuestsRunning reads them); drop older ones.
  std::string previous_logs;
  if (!previous_fleet_.empty()) {
    previous_logs = std::filesystem::path(previous_fleet_.front().log_path).parent_path();
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("vmm-", 0) == 0 && entry.path().string() != previous_logs) {
      std::filesystem::remove_all(entry.path(), ec);
    }
  }
  // mkdtemp: a recycled pid never lands on the previous instance's logs (kept above).
  ASSIGN_OR_RETURN(log_dir_, MakePrivateDir(dir, absl::StrCat("vmm-", getpid(), "-")));

  ASSIGN_OR_RETURN(microcode::CpuIdentity cpu, options_.platform->Identity(0));
  const VmmFleetSpec& f = *options_.fleet;
  for (int i = 0; i < f.vms; ++i) {
    specs_.push_back({.name = absl::StrCat("vm", i),
                      .program = f.program,
                      .vcpus = f.vcpus,
                      .initial_revision = cpu.current_revision});
  }
  rendezvous::CoordinatorOptions copts;
  copts.vmm_path = options_.vmm_path;
  copts.deadman = options_.deadman;
  copts.log_dir = log_dir_;
  ASSIGN_OR_RETURN(coordinator_, rendezvous::Coordinator::Start(specs_, copts));
  fleet_group_ = std::make_unique<orchestrator::CoordinatorGuestGroup>(*coordinator_, specs_);
  for (const rendezvous::VmSpec& s : specs_) {
    log_paths_.push_back(absl::StrCat(log_dir_, "/", s.name, ".log"));
  }
  return RecordFleet();
}

absl::Status OrchestratorRunner::RecordFleet() {
  std::vector<pid_t> pids = coordinator_->pids();
  std::vector<FleetRecordEntry> entries;
  for (size_t i = 0; i < specs_.size(); ++i) {
    entries.push_back({specs_[i].name, pids[i], log_paths_[i]});
  }
  {
    absl::MutexLock lock(&pids_mu_);
    pids_ = std::move(pids);
  }
  return WriteFleetRecord(options_.state_dir + "/fleet.txt", entries);
}

absl::StatusOr<std::string> OrchestratorRunner::RepairFleet() {
  if (coordinator_ == nullptr) return std::string();
  std::vector<std::string> stopped;
  const std::vector<pid_t> pids = vmm_pids();
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (VmmState(pids[i], specs_[i].name) == "stopped") {
      stopped.push_back(absl::StrCat(specs_[i].name, " (pid ", pids[i], ")"));
    }
  }
  if (!stopped.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "managed VMs stopped (SIGSTOP or a tracer), their vCPUs cannot park: ",
        absl::StrJoin(stopped, ", "), "; continue them (SIGCONT) first; nothing parked"));
  }
  ASSIGN_OR_RETURN(microcode::CpuIdentity host, late_load::HostIdentity(*options_.platform));
  absl::StatusOr<std::vector<rendezvous::Coordinator::Restart>> restarts =
      coordinator_->RestartExited(host.current_revision);
  if (!restarts.ok()) {
    RecordFleet().IgnoreError();  // the VMs restarted before the failure
    return absl::Status(restarts.status().code(),
                        absl::StrCat("managed VM: ", restarts.status().message()));
  }
  if (restarts->empty()) return std::string();
  std::vector<std::string> lines;
  for (const rendezvous::Coordinator::Restart& r : *restarts) {
    log_paths_[r.index] = r.log_path;
    lines.push_back(absl::StrFormat("%s (pid %d) had exited (%s): reaped, restarted as pid %d "
                                    "at revision 0x%x",
                                    r.name, r.old_pid, r.how, r.new_pid, host.current_revision));
  }
  RETURN_IF_ERROR(RecordFleet());
  return absl::StrCat("managed fleet: ", absl::StrJoin(lines, "; "));
}

std::vector<pid_t> OrchestratorRunner::vmm_pids() const {
  absl::MutexLock lock(&pids_mu_);
  return pids_;
}

absl::StatusOr<std::vector<ucode::v1::Guest>> OrchestratorRunner::ListGuests() {
  // Idle (no operation holds the fleet): a dead VMM is reaped and restarted now rather
  // than listed as exited until the next operation. A stopped one is listed as such.
  if (fleet_mu_.TryLock()) {
    RepairFleet().IgnoreError();
    fleet_mu_.Unlock();
  }
  std::vector<ucode::v1::Guest> out;
  const bool held = holding_.load();
  const std::vector<pid_t> pids = vmm_pids();
  for (size_t i = 0; i < specs_.size(); ++i) {
    ucode::v1::Guest& g = out.emplace_back();
    g.set_name(specs_[i].name);
    g.set_kind("ucode-vmm");
    g.set_vcpus(specs_[i].vcpus);
    const std::string state = VmmState(pids[i], specs_[i].name);
    g.set_state(state == "running" && held ? "rendezvous" : state);
    g.set_guest_view_updatable(true);
  }
  if (libvirt_ != nullptr) {
    ASSIGN_OR_RETURN(std::vector<ucode::v1::Guest> domains, libvirt_->Describe());
    for (ucode::v1::Guest& g : domains) out.push_back(std::move(g));
  }
  return out;
}

}  // namespace ucode::daemon
