#include "vmm/daemon/operations/fake_runner.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"

namespace ucode::daemon {
namespace {

using ucode::v1::Step;

// While paused, how often the fake looks at the cancel token (it has no callback).
constexpr absl::Duration kPauseCancelPoll = absl::Milliseconds(5);

// What the fake runner reports: the operation, its last step, and a note that says so.
ucode::v1::UpdateReport FakeReport(const std::string& operation, ucode::v1::Step last_step,
                                   absl::string_view what) {
  ucode::v1::UpdateReport r;
  r.set_operation(operation);
  r.set_last_step(last_step);
  r.set_ok(true);
  r.add_notes(absl::StrCat("fake runner: ", what));
  return r;
}

}  // namespace

FakeRunnerOptions DefaultFakeRunnerOptions() {
  FakeRunnerOptions o;
  o.host.set_hostname("fake-host");
  o.host.set_platform_backend("fake");
  o.host.set_signature(0x000806f8);
  o.host.set_platform_id(7);
  o.host.set_staging_supported(true);
  for (uint32_t i = 0; i < 4; ++i) {
    ucode::v1::LogicalCpu* c = o.host.add_cpus();
    c->set_id(i);
    c->set_package(0);
    c->set_core(i / 2);
    c->set_thread(i % 2);
    c->set_online(true);
    c->set_revision(0x2b000000);
  }
  for (int i = 0; i < 2; ++i) {
    ucode::v1::Guest& g = o.guests.emplace_back();
    g.set_name(absl::StrCat("vm", i));
    g.set_kind("ucode-vmm");
    g.set_vcpus(2);
    g.set_state("running");
    g.set_guest_view_updatable(true);
  }
  return o;
}

FakeUpdateRunner::FakeUpdateRunner(FakeRunnerOptions options) : options_(std::move(options)) {}

void FakeUpdateRunner::PauseAt(Step step) {
  absl::MutexLock lock(&mu_);
  pause_at_.insert(step);
}

void FakeUpdateRunner::Resume(Step step) {
  absl::MutexLock lock(&mu_);
  pause_at_.erase(step);
}

bool FakeUpdateRunner::WaitUntilPausedAt(Step step, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto paused = [this, step]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiting_at_.contains(step);
  };
  return mu_.AwaitWithTimeout(absl::Condition(&paused), timeout);
}

void FakeUpdateRunner::FailAt(Step step, absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_at_[step] = std::move(status);
}

std::vector<InterruptedOperation> FakeUpdateRunner::confirmed() const {
  absl::MutexLock lock(&mu_);
  return confirmed_;
}

int FakeUpdateRunner::applies() const {
  absl::MutexLock lock(&mu_);
  return applies_;
}

absl::Status FakeUpdateRunner::Point(Step step, const CancelToken& cancel) {
  if (options_.step_delay > absl::ZeroDuration()) absl::SleepFor(options_.step_delay);
  absl::MutexLock lock(&mu_);
  if (pause_at_.contains(step)) {
    waiting_at_.insert(step);
    auto resumed = [this, step]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !pause_at_.contains(step);
    };
    while (!mu_.AwaitWithTimeout(absl::Condition(&resumed), kPauseCancelPoll)) {
      if (cancel.Cancelled()) {
        waiting_at_.erase(step);
        return absl::CancelledError(absl::StrCat("fake runner cancelled while paused at ",
                                                 Step_Name(step)));
      }
    }
    waiting_at_.erase(step);
  }
  auto it = fail_at_.find(step);
  return it != fail_at_.end() ? it->second : absl::OkStatus();
}

absl::Status FakeUpdateRunner::StageAll(StepSink& sink, const CancelToken& cancel,
                                        size_t image_bytes) {
  RETURN_IF_ERROR(Point(ucode::v1::STEP_STAGING, cancel));
  RETURN_IF_ERROR(sink.BeginStep(
      ucode::v1::STEP_STAGING,
      absl::StrCat("stage ", image_bytes, " bytes on ", options_.packages, " packages")));
  const int chunks = std::max(1, options_.chunks_per_package);
  for (int pkg = 0; pkg < options_.packages; ++pkg) {
    for (int c = 0; c < chunks; ++c) {
      if (cancel.Cancelled()) {
        return absl::CancelledError(absl::StrCat("staging cancelled at package ", pkg));
      }
      ucode::v1::StagingProgress p;
      p.set_package(pkg);
      p.set_chunk(c);
      p.set_total_bytes(image_bytes);
      p.set_bytes_sent(image_bytes * (c + 1) / chunks);
      sink.Emit(ucode::v1::STEP_STAGING, absl::StrCat("package ", pkg, " chunk ", c), &p);
    }
  }
  RETURN_IF_ERROR(Point(ucode::v1::STEP_STAGED, cancel));
  sink.Emit(ucode::v1::STEP_STAGED, absl::StrCat(options_.packages, " packages staged"));
  return absl::OkStatus();
}

absl::Status FakeUpdateRunner::Rendezvous(StepSink& sink, const CancelToken& cancel,
                                          uint32_t revision, absl::Duration park_deadline) {
  RETURN_IF_ERROR(Point(ucode::v1::STEP_PARKED, cancel));
  RETURN_IF_ERROR(sink.BeginStep(ucode::v1::STEP_PARKED,
                                 absl::StrCat("rendezvous of ", options_.guests.size(),
                                              " guests, deadline ",
                                              absl::FormatDuration(park_deadline))));
  sink.Emit(ucode::v1::STEP_PARKED, absl::StrCat(options_.guests.size(), " guests parked"));
  // Inside the rendezvous the cancel token is never set: pauses here wait for Resume.
  RETURN_IF_ERROR(Point(ucode::v1::STEP_ACTIVATED, cancel));
  sink.Emit(ucode::v1::STEP_ACTIVATED, absl::StrFormat("host revision 0x%x", revision));
  RETURN_IF_ERROR(Point(ucode::v1::STEP_GUEST_VIEWS_SET, cancel));
  sink.Emit(ucode::v1::STEP_GUEST_VIEWS_SET, "MSR 0x8B set on every vCPU");
  RETURN_IF_ERROR(Point(ucode::v1::STEP_RELEASED, cancel));
  sink.Emit(ucode::v1::STEP_RELEASED, "all vCPUs released");
  return absl::OkStatus();
}

absl::StatusOr<ucode::v1::UpdateReport> FakeUpdateRunner::SyncGuestViews(
    const SyncParams& params, StepSink& sink, const CancelToken& cancel) {
  RETURN_IF_ERROR(Point(ucode::v1::STEP_VALIDATED, cancel));
  const uint32_t revision = options_.host.cpus().empty() ? 0 : options_.host.cpus(0).revision();
  sink.Emit(ucode::v1::STEP_VALIDATED, absl::StrFormat("host runs 0x%x (fake)", revision));
  RETURN_IF_ERROR(Rendezvous(sink, cancel, revision, params.park_deadline));
  RETURN_IF_ERROR(Point(ucode::v1::STEP_VERIFIED, cancel));
  sink.Emit(ucode::v1::STEP_VERIFIED, "every guest view reports the host's revision");
  return FakeReport(params.operation, ucode::v1::STEP_VERIFIED,
                    absl::StrFormat("views synced to 0x%x", revision));
}

absl::StatusOr<ucode::v1::UpdateReport> FakeUpdateRunner::Apply(const ApplyParams& params,
                                                                StepSink& sink,
                                                                const CancelToken& cancel) {
  {
    absl::MutexLock lock(&mu_);
    ++applies_;
  }
  RETURN_IF_ERROR(Point(ucode::v1::STEP_VALIDATED, cancel));
  ASSIGN_OR_RETURN(std::vector<microcode::MicrocodeImage> images,
                   microcode::ParseBundleStrict(params.image));
  uint32_t revision = images.front().revision();
  sink.Emit(ucode::v1::STEP_VALIDATED,
            absl::StrFormat("selected revision 0x%x (fake: first image)", revision));
  RETURN_IF_ERROR(StageAll(sink, cancel, params.image.size()));
  RETURN_IF_ERROR(Rendezvous(sink, cancel, revision, params.park_deadline));
  RETURN_IF_ERROR(Point(ucode::v1::STEP_VERIFIED, cancel));
  sink.Emit(ucode::v1::STEP_VERIFIED, "every CPU reports the new revision");
  RETURN_IF_ERROR(Point(ucode::v1::STEP_AGENTS_NOTIFIED, cancel));
  RETURN_IF_ERROR(sink.BeginStep(ucode::v1::STEP_AGENTS_NOTIFIED, "notify guest agents"));
  sink.Emit(ucode::v1::STEP_AGENTS_NOTIFIED, "0 agents answered (fake)");
  ucode::v1::UpdateReport report =
      FakeReport(params.operation, ucode::v1::STEP_AGENTS_NOTIFIED,
                 absl::StrFormat("revision 0x%x, %d guests", revision, options_.guests.size()));
  report.set_host_touched(true);
  return report;
}

absl::StatusOr<ucode::v1::UpdateReport> FakeUpdateRunner::Stage(const StageParams& params,
                                                                StepSink& sink,
                                                                const CancelToken& cancel) {
  RETURN_IF_ERROR(Point(ucode::v1::STEP_VALIDATED, cancel));
  sink.Emit(ucode::v1::STEP_VALIDATED, "image parsed");
  RETURN_IF_ERROR(StageAll(sink, cancel, params.image.size()));
  return FakeReport(params.operation, ucode::v1::STEP_STAGED,
                    absl::StrCat(options_.packages, " packages staged"));
}

absl::StatusOr<ucode::v1::Host> FakeUpdateRunner::DescribeHost() { return options_.host; }

absl::StatusOr<std::vector<ucode::v1::Guest>> FakeUpdateRunner::ListGuests() {
  return options_.guests;
}

absl::StatusOr<std::string> FakeUpdateRunner::ConfirmGuestsRunning(
    const InterruptedOperation& op) {
  absl::MutexLock lock(&mu_);
  confirmed_.push_back(op);
  return absl::StrCat(options_.guests.size(), " guests confirmed running (fake runner)");
}

}  // namespace ucode::daemon
