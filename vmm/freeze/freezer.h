// Holding the vCPU threads of several VMM processes with the kernel's cgroup freezer, all
// at once, under a deadline, and putting everything back.
//
// Lifecycle (one caller thread; the destructor thaws and restores whatever is left):
//   Prepare(targets): for every cgroup of ours, mkdir it (kV2Own: cgroup.type "threaded")
//     and move the threads in; open every freeze control and event file. Nothing is
//     frozen yet. On any failure everything done so far is undone.
//   Freeze(deadline): writes every control file first ("1" to cgroup.freeze, FROZEN to
//     freezer.state), then waits for all: cgroup2 by poll() on cgroup.events (the kernel
//     notifies it when "frozen" changes: cgroup_update_frozen() → cgroup_file_notify();
//     the notification may be deferred ~10 ms, so the poll is bounded and re-reads),
//     v1 by re-reading freezer.state, which has no notification (the legacy freezer
//     reports FREEZING until every task is frozen: freezer_read() → update_if_frozen()).
//     If any unit is not frozen by the deadline, everything is thawed and the error names
//     the targets and vCPUs that missed it.
//   Thaw(): "0" / THAWED to every unit; returns at once (the kernel wakes the tasks).
//   Restore(): threads back to where they came from, our cgroups removed.
//
// A cgroup2 vcpuN cgroup already frozen (someone else's cgroup.freeze = 1) is left alone:
// its target is reported `frozen_by_other`, never thawed by us.
#ifndef UCODE_VMM_FREEZE_FREEZER_H_
#define UCODE_VMM_FREEZE_FREEZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "host/base/unique_fd.h"
#include "vmm/freeze/cgroup_plan.h"

namespace ucode::freeze {

struct FreezeTarget {
  std::string name;  // the VM, for errors and reports
  FreezePlan plan;
};

// One file write that thaws one unit: what the guard process replays if we die.
struct ThawWrite {
  std::string path;
  std::string value;
};

struct TargetTiming {
  bool frozen_by_other = false;
  absl::Duration freeze_latency;  // first control write -> this target's last unit frozen
};

class Freezer {
 public:
  static absl::StatusOr<std::unique_ptr<Freezer>> Prepare(std::vector<FreezeTarget> targets);
  ~Freezer();

  Freezer(const Freezer&) = delete;
  Freezer& operator=(const Freezer&) = delete;

  // What thaws every unit we may freeze (for FreezeGuard), in unit order.
  [[nodiscard]] std::vector<ThawWrite> ThawWrites() const;

  // All or nothing (see above). ABORTED names what missed `deadline`.
  [[nodiscard]] absl::Status Freeze(absl::Duration deadline);

  // Thaws every unit we froze. OK when nothing is frozen.
  absl::Status Thaw();

  // Moves threads back and removes our cgroups (thaws first if needed).
  absl::Status Restore();

  [[nodiscard]] const std::vector<FreezeTarget>& targets() const { return targets_; }
  [[nodiscard]] const std::vector<TargetTiming>& timings() const { return timings_; }

 private:
  struct Unit {
    size_t target = 0;
    const FreezeUnit* spec = nullptr;
    bool created = false;  // our cgroup exists
    std::vector<pid_t> moved;  // threads we moved in
    bool ours_to_freeze = true;
    bool frozen = false;  // we wrote the freeze value and have not thawed
    UniqueFd control;  // cgroup.freeze / freezer.state
    UniqueFd events;   // cgroup.events / freezer.state
  };

  explicit Freezer(std::vector<FreezeTarget> targets) : targets_(std::move(targets)) {}
  absl::Status SetUp(Unit& u);
  // Writes every freeze (or thaw) control that needs it; returns "name: why" failures.
  std::vector<std::string> WriteControls(bool freeze);
  absl::Status WaitFrozen(absl::Time deadline, absl::Time start, std::vector<bool>& done);

  std::vector<FreezeTarget> targets_;
  std::vector<Unit> units_;
  std::vector<TargetTiming> timings_;
};

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_FREEZER_H_
