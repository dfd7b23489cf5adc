// Recovery after a coordinator died with VMs frozen and its guard died too (or was never
// started): what a restarted ucoded runs for each domain its journal says the dead
// operation was holding. For every vCPU thread of `pid`:
//  - in a cgroup of ours (last component "ucode-freeze-*", cgroup2 or v1 freezer): thaw
//    it, move the thread back to the parent cgroup (where it came from) and remove ours;
//  - in a cgroup2 "vcpuN" cgroup that is frozen: thaw it (the journal says the dead
//    operation froze this domain; nobody else freezes libvirt's vCPU cgroups).
// Returns how many cgroups it thawed; an error names what it could not undo.
#ifndef UCODE_VMM_FREEZE_LEFTOVERS_H_
#define UCODE_VMM_FREEZE_LEFTOVERS_H_

#include <sys/types.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ucode::freeze {

inline constexpr absl::string_view kOwnCgroupPrefix = "ucode-freeze-";

[[nodiscard]] absl::StatusOr<int> ThawLeftovers(absl::string_view proc_root,
                                                absl::string_view mountinfo, pid_t pid);

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_LEFTOVERS_H_
