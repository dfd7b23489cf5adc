// A scripted UpdateRunner for tests, benchmarks and `ucoded --runner=fake` rehearsals: it
// walks the steps of an update in the orchestrator's order, reporting to the StepSink as
// the real runner must (BeginStep before staging, the rendezvous and the agent
// notifications), and changes nothing. Tests can pause it at a step, inject a failure, and
// see the restart hook's calls.
#ifndef UCODE_VMM_DAEMON_FAKE_RUNNER_H_
#define UCODE_VMM_DAEMON_FAKE_RUNNER_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

struct FakeRunnerOptions {
  int packages = 2;
  int chunks_per_package = 3;
  // Pause before each step: lets watchers fall behind in load tests; zero in unit tests.
  absl::Duration step_delay = absl::ZeroDuration();
  ucode::v1::Host host;  // DefaultFakeRunnerOptions() fills it
  std::vector<ucode::v1::Guest> guests;
};

// An emulated 1-package, 4-CPU Sapphire Rapids host at revision 0x2b000000 and two guests.
FakeRunnerOptions DefaultFakeRunnerOptions();

class FakeUpdateRunner final : public UpdateRunner {
 public:
  explicit FakeUpdateRunner(FakeRunnerOptions options = DefaultFakeRunnerOptions());

  absl::StatusOr<ucode::v1::UpdateReport> Apply(const ApplyParams& params, StepSink& sink,
                                    const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::UpdateReport> Stage(const StageParams& params, StepSink& sink,
                                    const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::UpdateReport> SyncGuestViews(const SyncParams& params, StepSink& sink,
                                             const CancelToken& cancel) override;
  absl::StatusOr<ucode::v1::Host> DescribeHost() override;
  absl::StatusOr<std::vector<ucode::v1::Guest>> ListGuests() override;
  absl::StatusOr<std::string> ConfirmGuestsRunning(const InterruptedOperation& op) override;

  // The runner stops when it reaches `step` (before announcing it) until Resume(step) or,
  // before the rendezvous, a cancel.
  void PauseAt(ucode::v1::Step step);
  void Resume(ucode::v1::Step step);
  [[nodiscard]] bool WaitUntilPausedAt(ucode::v1::Step step, absl::Duration timeout);
  // The runner returns `status` when it reaches `step`.
  void FailAt(ucode::v1::Step step, absl::Status status);

  [[nodiscard]] std::vector<InterruptedOperation> confirmed() const;
  [[nodiscard]] int applies() const;

 private:
  // Pause/failure point before `step`.
  absl::Status Point(ucode::v1::Step step, const CancelToken& cancel);
  absl::Status StageAll(StepSink& sink, const CancelToken& cancel, size_t image_bytes);
  // PARKED (begun and emitted) .. RELEASED, with the pause/failure points of each.
  absl::Status Rendezvous(StepSink& sink, const CancelToken& cancel, uint32_t revision,
                          absl::Duration park_deadline);

  const FakeRunnerOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_set<int> pause_at_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int> waiting_at_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, absl::Status> fail_at_ ABSL_GUARDED_BY(mu_);
  std::vector<InterruptedOperation> confirmed_ ABSL_GUARDED_BY(mu_);
  int applies_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_FAKE_RUNNER_H_
