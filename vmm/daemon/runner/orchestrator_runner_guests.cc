// OrchestratorRunner's guests: the managed ucode-vmm fleet (started, recorded in fleet.txt,
// repaired between operations), which guests an operation names, and ListGuests.
#include <unistd.h>

#include <filesystem>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/private_files.h"
#include "host/base/status_macros.h"
#include "host/late_load/late_load.h"
#include "vmm/daemon/runner/orchestrator_runner.h"

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
  ASSIGN_OR_RETURN(previous_fleet_, inventory::ReadFleetRecord(record));
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
  ASSIGN_OR_RETURN(fleet_, inventory::ManagedFleet::Start(*options_.fleet, cpu.current_revision,
                                                          {.vmm_path = options_.vmm_path,
                                                           .deadman = options_.deadman,
                                                           .log_dir = log_dir_}));
  return RecordFleet();
}

absl::Status OrchestratorRunner::RecordFleet() {
  return inventory::WriteFleetRecord(options_.state_dir + "/fleet.txt", fleet_->Record());
}

absl::StatusOr<std::string> OrchestratorRunner::RepairFleet() {
  if (fleet_ == nullptr) return std::string();
  ASSIGN_OR_RETURN(microcode::CpuIdentity host, late_load::HostIdentity(*options_.platform));
  absl::StatusOr<std::string> repaired = fleet_->Repair(host.current_revision);
  if (!repaired.ok()) {
    RecordFleet().IgnoreError();  // the VMs restarted before the failure
    return repaired.status();
  }
  if (!repaired->empty()) RETURN_IF_ERROR(RecordFleet());
  return repaired;
}

absl::StatusOr<OrchestratorRunner::GuestSelection> OrchestratorRunner::SelectGuests(
    const std::vector<std::string>& guests) const {
  GuestSelection sel;
  if (guests.empty()) {
    sel.fleet = fleet_ != nullptr;
    sel.all_libvirt = libvirt_ != nullptr;
    return sel;
  }
  std::vector<std::string> known;  // the fleet's VMs, then the selected domains
  if (fleet_ != nullptr) {
    for (const rendezvous::VmSpec& s : fleet_->specs()) known.push_back(s.name);
  }
  const size_t fleet_size = known.size();
  if (libvirt_ != nullptr) {
    absl::StatusOr<std::vector<std::string>> names = libvirt_->Names();
    if (!names.ok()) {
      return absl::UnavailableError(absl::StrCat("guests: ", names.status().message()));
    }
    known.insert(known.end(), names->begin(), names->end());
  }
  size_t fleet_named = 0;
  for (const std::string& g : guests) {
    const size_t i = absl::c_find(known, g) - known.begin();
    if (i == known.size()) {
      return absl::InvalidArgumentError(absl::StrCat("guests: '", g, "' is not a managed guest (",
                                                     absl::StrJoin(known, ", "), ")"));
    }
    if (i < fleet_size) {
      ++fleet_named;
    } else if (!absl::c_linear_search(sel.libvirt, g)) {
      sel.libvirt.push_back(g);
    }
  }
  // The fleet parks as one rendezvous group; a VM left running would keep a stale view.
  if (fleet_named != 0 && fleet_named < fleet_size) {
    return absl::InvalidArgumentError(
        "guests: the ucode-vmm fleet is parked as one group; name all of its VMs or none");
  }
  sel.fleet = fleet_named != 0;
  return sel;
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
  if (fleet_ != nullptr) {
    const std::vector<std::string> states = fleet_->States();
    for (size_t i = 0; i < states.size(); ++i) {
      ucode::v1::Guest& g = out.emplace_back();
      g.set_name(fleet_->specs()[i].name);
      g.set_kind("ucode-vmm");
      g.set_vcpus(fleet_->specs()[i].vcpus);
      g.set_state(states[i] == "running" && held ? "rendezvous" : states[i]);
      g.set_guest_view_updatable(true);
    }
  }
  if (libvirt_ != nullptr) {
    ASSIGN_OR_RETURN(std::vector<ucode::v1::Guest> domains, libvirt_->Describe());
    for (ucode::v1::Guest& g : domains) out.push_back(std::move(g));
  }
  return out;
}

}  // namespace ucode::daemon
