// The seam between ucoded and the code that changes the host: the daemon validates requests,
// keeps the operation registry and the journal, and drives an UpdateRunner. The real runner
// is the orchestrator (vmm/orchestrator); FakeUpdateRunner (fake_runner.h) stands in for
// tests and rehearsals.
#ifndef UCODE_VMM_DAEMON_UPDATE_RUNNER_H_
#define UCODE_VMM_DAEMON_UPDATE_RUNNER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "proto/ucode/v1/ucoded.pb.h"

namespace ucode::daemon {

// What the daemon hands the runner after validating a request. The image bytes were
// parsed once already (format errors never reach the runner); selection against the
// host's CPUs is the runner's job because only it knows the host.
struct ApplyParams {
  std::string operation;              // "operations/<id>", for logs and reports
  std::vector<uint8_t> image;         // whole file or bundle
  ucode::v1::UpdateMode mode = ucode::v1::UPDATE_MODE_STRICT;
  ucode::v1::MinRevPolicy min_rev_policy = ucode::v1::MIN_REV_POLICY_ENFORCE;
  std::vector<std::string> guests;    // empty: every managed guest
  absl::Duration park_deadline;       // already defaulted and bounded by the daemon
  absl::Duration agent_timeout;
};

struct SyncParams {
  std::string operation;
  std::vector<std::string> guests;  // empty: every managed guest
  absl::Duration park_deadline;     // already defaulted and bounded by the daemon
};

struct StageParams {
  std::string operation;
  std::vector<uint8_t> image;
};

// Where a runner reports progress. Thread-safe: staging may report from one thread per
// package.
class StepSink {
 public:
  virtual ~StepSink() = default;

  // Called BEFORE a step that changes the host or a VM (STEP_STAGING, STEP_PARKED for the
  // whole rendezvous, STEP_AGENTS_NOTIFIED). The daemon journals it durably before it
  // returns. A non-OK result means "do not start the step": CANCELLED when the operation
  // was cancelled (cancel is honoured until BeginStep(STEP_PARKED) succeeds), or the
  // journal's error. The runner then returns that status.
  //
  // `paused_domains` (with STEP_PARKED): the guests the step is about to pause that have no
  // dead-man release of their own (libvirt domains), journaled in the same transaction so
  // that a restarted daemon resumes exactly those (InterruptedOperation::paused_domains).
  [[nodiscard]] virtual absl::Status BeginStep(ucode::v1::Step step, absl::string_view what,
                                               absl::Span<const std::string> paused_domains) = 0;
  [[nodiscard]] absl::Status BeginStep(ucode::v1::Step step, absl::string_view what) {
    return BeginStep(step, what, {});
  }

  // A progress event: `step` finished (or, for STEP_STAGING, made progress: `staging`
  // set). Never blocks on I/O or on watchers, so it is safe to call while vCPUs are parked.
  virtual void Emit(ucode::v1::Step step, absl::string_view message,
                    const ucode::v1::StagingProgress* staging = nullptr) = 0;
};

// Set by the daemon when a caller cancels; never set once BeginStep(STEP_PARKED) has
// succeeded. The runner reads it before each step that changes the host or a VM and inside
// a staging transfer (before each mailbox transaction and while a slow device is polled;
// the cancelled package's mailbox is reset with ABORT).
class CancelToken {
 public:
  void Cancel() {
    if (!notification_.HasBeenNotified()) notification_.Notify();
  }
  [[nodiscard]] bool Cancelled() const { return notification_.HasBeenNotified(); }

 private:
  absl::Notification notification_;
};

// What the daemon knows about an operation the previous daemon process did not finish,
// so the runner can undo what a dead process may have left behind.
struct InterruptedOperation {
  std::string operation;
  std::string kind;                        // "apply", "stage" or "sync"
  ucode::v1::Step last_step;               // last finished step journaled
  ucode::v1::Step interrupted_step;        // begun, not finished
  // Libvirt domains BeginStep(STEP_PARKED) journaled as about to be paused by us.
  std::vector<std::string> paused_domains;
};

class UpdateRunner {
 public:
  virtual ~UpdateRunner() = default;

  // The whole update. Returns the report, whose verdict (ok, error_code, error) is the
  // operation's, or a status when it failed before there was one. A failure's code says
  // what the caller should do (ABORTED: retry the operation; FAILED_PRECONDITION:
  // fix the host first; CANCELLED: cancelled before the rendezvous).
  virtual absl::StatusOr<ucode::v1::UpdateReport> Apply(const ApplyParams& params,
                                                        StepSink& sink,
                                                        const CancelToken& cancel) = 0;

  // Staging only (no activation). Returns the report.
  virtual absl::StatusOr<ucode::v1::UpdateReport> Stage(const StageParams& params,
                                                        StepSink& sink,
                                                        const CancelToken& cancel) = 0;

  // Sets every selected guest's view to the revision the host runs (park, set, release,
  // verify; orchestrator::SyncGuestViews). Returns the report; BeginStep(STEP_PARKED) and
  // cancel as for Apply.
  virtual absl::StatusOr<ucode::v1::UpdateReport> SyncGuestViews(const SyncParams& params,
                                                                 StepSink& sink,
                                                                 const CancelToken& cancel) = 0;

  virtual absl::StatusOr<ucode::v1::Host> DescribeHost() = 0;
  virtual absl::StatusOr<std::vector<ucode::v1::Guest>> ListGuests() = 0;

  // Called once at daemon start for every operation found unfinished in the journal,
  // before the daemon serves calls: confirm every VM the operation may have parked is
  // running again (each VM's own dead-man deadline should already have released it).
  // Returns a one-line account for the operation's report.
  virtual absl::StatusOr<std::string> ConfirmGuestsRunning(
      const InterruptedOperation& op) = 0;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_UPDATE_RUNNER_H_
