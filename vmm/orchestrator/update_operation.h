// One guest-transparent microcode update (ARCHITECTURE.md section 3):
//   validate -> stage (guests keep running) -> prepare agents -> prepare the host load
//   -> [strict] park all groups -> activate -> [fast] park all groups -> set the guest
//   view everywhere -> release all -> verify host CPUs and every guest view -> notify
//   guest agents -> report.
// Fast mode loads the host first (guests running), then parks only to switch the view.
// With no groups it is the host-only load (`ucodectl load`).
//
// Failure rules: a group that does not park makes every group release and the operation
// abort with the host untouched; no VM is ever left parked on any path (a guard releases
// every group on scope exit); staging failures are reported and the load goes on unstaged.
//
// RunUpdate runs on the caller's thread; with several groups the park / view / release
// steps fan out one thread per group and join before the next step.
#ifndef UCODE_VMM_ORCHESTRATOR_UPDATE_OPERATION_H_
#define UCODE_VMM_ORCHESTRATOR_UPDATE_OPERATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "host/microcode/selection.h"
#include "host/platform/platform.h"
#include "host/staging/staging_driver.h"
#include "vmm/orchestrator/guest_group.h"
#include "vmm/orchestrator/report.h"

namespace ucode::orchestrator {

// Progress and cancellation; every member is optional. Map 1:1 onto the daemon's
// StepSink / CancelToken (vmm/daemon/operations/update_runner.h).
struct UpdateCallbacks {
  // Called BEFORE a step that changes the host or a VM: STEP_STAGING, STEP_PARKED (for the
  // whole rendezvous, in both modes, before the host is touched) and STEP_AGENTS_NOTIFIED.
  // Non-OK means "do not start it" and the operation returns that status (CANCELLED on
  // cancel).
  std::function<absl::Status(Step, absl::string_view)> begin_step;
  // A step finished, or (STEP_STAGING with `staging` set) staging progress. Must not block:
  // it is called while vCPUs are parked, and from staging threads.
  std::function<void(Step, absl::string_view, const staging::StagingProgress*)> emit;
  // Polled before each step until the rendezvous begins, and inside the staging transfer
  // (staging::StagingOptions::cancelled); true aborts with CANCELLED.
  std::function<bool()> cancelled;
};

struct UpdateOptions {
  std::string operation = "update";
  UpdateMode mode = v1::UPDATE_MODE_STRICT;
  microcode::MinRevPolicy policy = microcode::MinRevPolicy::kEnforce;
  // Stage, unless the platform leaves it to the kernel (Platform::StagingLeftToKernel).
  bool stage = true;
  staging::StagingOptions staging;  // `progress` is replaced (events go to `emit`)
  platform::ActivationOptions late_load;
  absl::Duration guests_running_timeout = absl::Seconds(10);
  absl::Duration park_deadline = absl::Milliseconds(250);
  absl::Duration step_deadline = absl::Milliseconds(500);  // set view, release
  absl::Duration guest_view_timeout = absl::Seconds(5);    // guests read the new revision
  absl::Duration agent_timeout = absl::Seconds(2);
};

// Runs the whole operation on `platform` with the image file (or bundle) `file` and the
// VMs of `groups` (borrowed; may be empty: the host-only load, which refuses an image the
// host already runs instead of syncing views). Always returns a report; its
// `status` is the verdict (OK iff every CPU took the update, every host CPU and every
// guest view was verified; a view "stale until restart" is reported, not an error).
UpdateReport RunUpdate(platform::Platform& platform, std::vector<uint8_t> file,
                       absl::Span<GuestGroup* const> groups, const UpdateOptions& options,
                       const UpdateCallbacks& callbacks = {});

// Only the first steps of RunUpdate: validate `file` and stage the selected image, with
// the same events and cancel, on any platform (the operator asked for it: `ucodectl
// stage`, ucoded's Stage). Nothing is loaded and no VM is touched. Staging failures are
// in report.staging, not in report.status (staging is opportunistic).
UpdateReport StageUpdate(platform::Platform& platform, std::vector<uint8_t> file,
                         const UpdateOptions& options, const UpdateCallbacks& callbacks = {});

// For VMs whose view lags the host (a dead-man released them before the view step, or a
// VMM restarted with an old revision): parks every group, sets every guest view to the
// revision the host runs (every online CPU must agree), releases, verifies. RunUpdate
// takes this path itself when the host already runs the newest image in its file.
UpdateReport SyncGuestViews(platform::Platform& platform, absl::Span<GuestGroup* const> groups,
                            const UpdateOptions& options, const UpdateCallbacks& callbacks = {});

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_UPDATE_OPERATION_H_
