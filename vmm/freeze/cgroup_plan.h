// How to freeze each vCPU thread of a VMM process, chosen from what the kernel offers: a
// pure function of /proc/self/mountinfo and the process's /proc/PID/task/TID/cgroup files,
// so that every host layout can be tested with fake text.
//
// Per thread, in order of preference (see README.md):
//  1. kV2InPlace: cgroup2 is mounted and the thread sits alone (no other thread of the
//     process) in a cgroup whose last component is "vcpuN" for its own vCPU index: the
//     per-vCPU threaded cgroups libvirt makes (`.../libvirt/vcpuN` on systemd hosts,
//     `/machine/qemu-ID-NAME.libvirt-qemu/vcpuN` on others). Frozen in place
//     (cgroup.freeze), nothing moves.
//  2. kV2Own: cgroup2 is mounted and the thread is still in its process's cgroup (nobody
//     split the process into threaded cgroups): a threaded child cgroup of ours under
//     it, the thread moved in through cgroup.threads and back afterwards.
//  3. kV1Own: the cgroup-v1 freezer hierarchy: a child cgroup of ours under the thread's
//     freezer cgroup, the TID moved in through `tasks` and back afterwards. Other v1
//     hierarchies (cpu, cpuset, ...) keep the thread where libvirt put it.
// Neither cgroup2 nor a v1 freezer: UNIMPLEMENTED with the reason, and the caller falls
// back to suspending the VM.
//
// Only mounts of a hierarchy's root ("/" in mountinfo's root field) are used: a mount of
// a subtree (cgroup namespaces, bind mounts) would need path translation that a
// mis-read could turn into freezing the wrong cgroup.
#ifndef UCODE_VMM_FREEZE_CGROUP_PLAN_H_
#define UCODE_VMM_FREEZE_CGROUP_PLAN_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ucode::freeze {

enum class Mechanism { kV2InPlace, kV2Own, kV1Own };

// Where the hierarchies are mounted (empty: not mounted, or only a subtree is).
struct CgroupMounts {
  std::string v2;          // e.g. /sys/fs/cgroup or /sys/fs/cgroup/unified
  std::string v1_freezer;  // e.g. /sys/fs/cgroup/freezer
};
[[nodiscard]] CgroupMounts ParseMountinfo(absl::string_view mountinfo);

// One thread's /proc/PID/task/TID/cgroup, read as the kernel writes it
// (`HIERARCHY-ID:CONTROLLERS:PATH` per line; cgroup2 is `0::PATH`).
struct ThreadCgroups {
  std::string v2;          // empty: no cgroup2 line
  std::string v1_freezer;  // empty: no freezer line
};
[[nodiscard]] ThreadCgroups ParseCgroupFile(absl::string_view text);

// One thread of the process. `vcpu` is the vCPU index for vCPU threads, -1 for the
// others (needed to tell whether a vcpuN cgroup holds its vCPU thread alone).
struct ThreadInput {
  pid_t tid = 0;
  int vcpu = -1;
  std::string cgroup_file;  // the text of /proc/PID/task/TID/cgroup
};

// One cgroup to freeze. For kV2InPlace `dir` is libvirt's cgroup and `tids` holds only
// its thread; for the others `dir` is ours (created by the freezer, name `own_name`)
// under `origin`, where `tids` go back afterwards.
struct FreezeUnit {
  Mechanism mechanism = Mechanism::kV2InPlace;
  std::string dir;     // absolute path in the mounted hierarchy
  std::string origin;  // kV2Own/kV1Own: the cgroup the threads came from (absolute)
  std::vector<pid_t> tids;
  std::vector<int> vcpus;
};

struct FreezePlan {
  std::vector<FreezeUnit> units;
  [[nodiscard]] std::string Describe() const;  // "vcpu0,vcpu1: cgroup2-in-place ..."
};

// `threads` are every thread of one process (the first one is the main thread, whose
// cgroup2 path is the process's cgroup). `own_name` names the cgroups of ours (one path
// component, e.g. "ucode-freeze-<op>").
[[nodiscard]] absl::StatusOr<FreezePlan> PlanFreeze(absl::string_view mountinfo,
                                                    absl::Span<const ThreadInput> threads,
                                                    absl::string_view own_name);

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_CGROUP_PLAN_H_
