#include "vmm/inventory/managed_fleet.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"

namespace ucode::inventory {

absl::StatusOr<std::unique_ptr<ManagedFleet>> ManagedFleet::Start(
    const VmmFleetSpec& spec, uint32_t initial_revision,
    const rendezvous::CoordinatorOptions& options) {
  std::vector<rendezvous::VmSpec> specs;
  for (int i = 0; i < spec.vms; ++i) {
    specs.push_back({.name = absl::StrCat("vm", i),
                     .program = spec.program,
                     .vcpus = spec.vcpus,
                     .initial_revision = initial_revision});
  }
  ASSIGN_OR_RETURN(std::unique_ptr<rendezvous::Coordinator> coordinator,
                   rendezvous::Coordinator::Start(specs, options));
  return std::unique_ptr<ManagedFleet>(
      new ManagedFleet(std::move(specs), std::move(coordinator), options.log_dir));
}

ManagedFleet::ManagedFleet(std::vector<rendezvous::VmSpec> specs,
                           std::unique_ptr<rendezvous::Coordinator> coordinator,
                           const std::string& log_dir)
    : specs_(std::move(specs)),
      coordinator_(std::move(coordinator)),
      group_(*coordinator_, specs_) {
  for (const rendezvous::VmSpec& s : specs_) {
    log_paths_.push_back(log_dir.empty() ? "" : absl::StrCat(log_dir, "/", s.name, ".log"));
  }
  RefreshPids();
}

ManagedFleet::~ManagedFleet() {
  absl::Status s = Shutdown();
  (void)s;  // the VMMs are reaped either way (SIGKILL after the grace period)
}

void ManagedFleet::RefreshPids() {
  std::vector<pid_t> pids = coordinator_->pids();
  absl::MutexLock lock(&pids_mu_);
  pids_ = std::move(pids);
}

std::vector<pid_t> ManagedFleet::pids() const {
  absl::MutexLock lock(&pids_mu_);
  return pids_;
}

std::vector<std::string> ManagedFleet::States() const {
  const std::vector<pid_t> now = pids();
  std::vector<std::string> out;
  for (size_t i = 0; i < specs_.size(); ++i) out.push_back(VmmState(now[i], specs_[i].name));
  return out;
}

std::vector<FleetRecordEntry> ManagedFleet::Record() const {
  const std::vector<pid_t> now = pids();
  std::vector<FleetRecordEntry> out;
  for (size_t i = 0; i < specs_.size(); ++i) out.push_back({specs_[i].name, now[i], log_paths_[i]});
  return out;
}

absl::StatusOr<std::string> ManagedFleet::Repair(uint32_t revision) {
  std::vector<std::string> stopped;
  const std::vector<pid_t> now = pids();
  const std::vector<std::string> states = States();
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (states[i] == "stopped") {
      stopped.push_back(absl::StrCat(specs_[i].name, " (pid ", now[i], ")"));
    }
  }
  if (!stopped.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "managed VMs stopped (SIGSTOP or a tracer), their vCPUs cannot park: ",
        absl::StrJoin(stopped, ", "), "; continue them (SIGCONT) first; nothing parked"));
  }
  absl::StatusOr<std::vector<rendezvous::Coordinator::Restart>> restarts =
      coordinator_->RestartExited(revision);
  RefreshPids();  // the VMs restarted before a failure too
  if (!restarts.ok()) {
    return absl::Status(restarts.status().code(),
                        absl::StrCat("managed VM: ", restarts.status().message()));
  }
  if (restarts->empty()) return std::string();
  std::vector<std::string> lines;
  for (const rendezvous::Coordinator::Restart& r : *restarts) {
    log_paths_[r.index] = r.log_path;
    lines.push_back(
        absl::StrFormat("%s (pid %d) had exited (%s): reaped, restarted as pid %d "
                        "at revision 0x%x",
                        r.name, r.old_pid, r.how, r.new_pid, revision));
  }
  return absl::StrCat("managed fleet: ", absl::StrJoin(lines, "; "));
}

}  // namespace ucode::inventory
