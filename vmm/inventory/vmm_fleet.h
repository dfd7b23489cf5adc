// The daemon's managed ucode-vmm fleet across daemon instances: the `--vmm_fleet` spec, the
// record each instance leaves in its state directory (fleet.txt: one "name pid log" line
// per VM), and the check a restarted daemon makes that every VM of the dead instance
// released itself. ucode-vmm releases its parked vCPUs when its control socket closes
// (the coordinator died) or at its dead-man deadline, logs it, and exits
// (vmm/kvm/vmm_server.cc, OnCoordinatorGone); the check reads those facts back from the
// pids and the logs.
#ifndef UCODE_VMM_INVENTORY_VMM_FLEET_H_
#define UCODE_VMM_INVENTORY_VMM_FLEET_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ucode::inventory {

// "4x2": 4 VMs of 2 vCPUs; "4x2:halt" picks the guest program (default spin).
struct VmmFleetSpec {
  int vms = 0;
  int vcpus = 0;
  std::string program = "spin";
};
absl::StatusOr<VmmFleetSpec> ParseVmmFleet(absl::string_view text);

struct FleetRecordEntry {
  std::string name;
  pid_t pid = 0;
  std::string log_path;
};
// Written 0600 through private_files.h's WritePrivateFile (never through a symlink).
absl::Status WriteFleetRecord(const std::string& path, const std::vector<FleetRecordEntry>& vms);
// A missing file is an empty fleet.
absl::StatusOr<std::vector<FleetRecordEntry>> ReadFleetRecord(const std::string& path);

// What /proc says VM `name`'s VMM is doing: "running", "stopped" (SIGSTOP or a tracer: its
// vCPUs cannot park), or "exited" (gone, a zombie, or the pid now names another program).
std::string VmmState(pid_t pid, absl::string_view name);

// For each VM of a dead instance's fleet: waits (up to `wait`) for it to release and exit,
// then says what happened from its log. OK when every VM is gone or provably released;
// the text is one line either way (the error names the VMs not confirmed).
absl::StatusOr<std::string> ConfirmFleetReleased(const std::vector<FleetRecordEntry>& fleet,
                                                 absl::Duration wait);

}  // namespace ucode::inventory

#endif  // UCODE_VMM_INVENTORY_VMM_FLEET_H_
