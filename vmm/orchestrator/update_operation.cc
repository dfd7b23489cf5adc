#include "vmm/orchestrator/update_operation.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"
#include "host/late_load/late_load.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {
namespace {

// One operation's shared state; each step is a function over it.
struct Context {
  platform::Platform& platform;
  absl::Span<GuestGroup* const> groups;
  const UpdateOptions& options;
  const UpdateCallbacks& cb;
  UpdateReport& report;

  void Emit(Step step, absl::string_view message) {
    report.last_step = step;
    if (cb.emit) cb.emit(step, message, nullptr);
  }
  absl::Status Begin(Step step, absl::string_view what) {
    if (cb.cancelled && cb.cancelled()) {
      return absl::CancelledError(absl::StrCat("cancelled before ", StepName(step)));
    }
    return cb.begin_step ? cb.begin_step(step, what) : absl::OkStatus();
  }
};

absl::Status WithContext(absl::string_view what, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(what, ": ", s.message()));
}

// Selects the image for this host and fills the report's image fields.
absl::StatusOr<late_load::HostUpdatePlan> Validate(Context& c, std::vector<uint8_t> file) {
  absl::StatusOr<late_load::HostUpdatePlan> plan =
      late_load::PlanHostUpdate(c.platform, std::move(file), c.options.policy);
  if (!plan.ok()) return WithContext("validate", plan.status());
  UpdateReport& r = c.report;
  r.plan = plan->Describe();
  r.signature = plan->cpu.signature;
  r.platform_id = plan->cpu.platform_id;
  r.old_revision = plan->cpu.current_revision;
  r.new_revision = plan->image.revision();
  r.image_date = plan->image.DateString();
  r.image_bytes = plan->image.total_size();
  c.Emit(v1::STEP_VALIDATED, r.plan);
  return plan;
}

// Pushes the image through every package's mailbox. Opportunistic: a failed package is
// reported and the load goes on unstaged there.
absl::Status StageImage(Context& c, const late_load::HostUpdatePlan& plan) {
  RETURN_IF_ERROR(c.Begin(v1::STEP_STAGING, plan.Describe()));
  staging::StagingOptions opts = c.options.staging;
  opts.progress = nullptr;
  if (c.cb.emit) {
    auto emit = c.cb.emit;
    opts.progress = [emit](const staging::StagingProgress& p) {
      emit(v1::STEP_STAGING, absl::StrCat("package ", p.package), &p);
    };
  }
  opts.cancelled = c.cb.cancelled;  // honoured inside the transfer too
  c.report.staging = staging::StageAllPackages(c.platform, plan.update(), opts);
  if (c.cb.cancelled && c.cb.cancelled()) {
    return absl::CancelledError(
        absl::StrCat("cancelled during staging: ", c.report.staging->Summary()));
  }
  if (!c.report.staging->all_staged()) {
    c.report.notes.push_back(absl::StrCat(c.report.staging->Summary(),
                                          ": activation on those packages loads unstaged"));
  }
  c.Emit(v1::STEP_STAGED, c.report.staging->Summary());
  return absl::OkStatus();
}

// An update stages unless told not to or the platform leaves it to the kernel.
absl::Status Stage(Context& c, const late_load::HostUpdatePlan& plan) {
  if (!c.options.stage) {
    c.report.notes.push_back("staging skipped (--no-stage): activation loads unstaged");
    return absl::OkStatus();
  }
  if (std::string kernel = c.platform.StagingLeftToKernel(); !kernel.empty()) {
    c.report.notes.push_back(std::move(kernel));
    return absl::OkStatus();
  }
  return StageImage(c, plan);
}

std::vector<AgentReply> NotifyAll(Context& c, AgentNotice::Phase phase) {
  AgentNotice notice{.phase = phase,
                     .old_revision = c.report.old_revision,
                     .new_revision = c.report.new_revision};
  std::vector<NotifyResult> results(c.groups.size());
  FanOut(c.groups, [&](GuestGroup& g, size_t i) {
    results[i] = g.Notify(notice, c.options.agent_timeout);
    return absl::OkStatus();
  });
  std::vector<AgentReply> out;
  for (NotifyResult& r : results) {
    for (AgentReply& a : r.replies) out.push_back(std::move(a));
  }
  return out;
}

// The revision every guest should see after the load: the image's when every CPU took
// it, else the lowest one any CPU runs (never tell a guest more than the host does). An
// online CPU whose revision is not known (one that never arrived or timed out keeps
// revision_after 0) counts as still running the old one.
uint32_t GuestViewRevision(const late_load::LateLoadResult& load) {
  if (load.status.ok()) return load.new_revision;
  uint32_t lowest = load.new_revision;
  for (const late_load::CpuResult& cpu : load.cpus) {
    if (cpu.outcome == late_load::CpuOutcome::kOffline) continue;
    lowest = std::min(lowest, cpu.revision_after != 0 ? cpu.revision_after : load.old_revision);
  }
  return lowest;
}

// Parks every group (the guard is armed first so that nothing can stay parked).
absl::Status Park(Context& c, ReleaseGuard& guard) {
  guard.Arm();
  absl::Time t0 = absl::Now();
  absl::Status s = ParkAll(c.groups, c.options.park_deadline);
  c.report.park_all = absl::Now() - t0;
  if (!s.ok()) {
    guard.Disarm();  // ParkAll released everything already
    return s;
  }
  int vcpus = 0;
  for (GuestGroup* g : c.groups) vcpus += g->total_vcpus();
  c.Emit(v1::STEP_PARKED, absl::StrCat("parked ", vcpus, " vCPUs in ",
                                     absl::FormatDuration(c.report.park_all)));
  return absl::OkStatus();
}

// While parked: the guest view in every group (`results`: each group's outcome).
absl::Status SetViews(Context& c, uint32_t revision, std::vector<GuestViewResult>* results) {
  absl::Time t0 = absl::Now();
  absl::Status view = SetRevisionAll(c.groups, revision, c.options.step_deadline, results);
  c.report.set_views = absl::Now() - t0;
  if (view.ok()) c.Emit(v1::STEP_GUEST_VIEWS_SET, absl::StrFormat("MSR 0x8B = 0x%x", revision));
  return view;
}

bool MissedRelease(const GuestViewResult& result) {
  return std::any_of(result.vms.begin(), result.vms.end(), [](const VmViewOutcome& v) {
    return v.failure == ViewFailure::kMissedRelease;
  });
}

// After a release that handed the view over (SetViews): fails naming the VMs with a vCPU
// that missed it (its dead-man had released it), which ResyncViews() parks again. Other
// failures (a write or read-back) are left to Verify(), which reports them: parking
// again would not set those views, and every vCPU runs already.
absl::Status ViewsAfterRelease(Context& c, std::vector<GuestViewResult>* results) {
  results->resize(c.groups.size());
  std::vector<std::string> missed;
  for (size_t i = 0; i < c.groups.size(); ++i) {
    GuestViewResult after = c.groups[i]->ViewAfterRelease();
    if (!MissedRelease(after)) continue;
    for (const VmViewOutcome& v : after.vms) {
      if (v.failure != ViewFailure::kMissedRelease) continue;
      missed.push_back(absl::StrCat(v.name, ": ", v.detail));
    }
    (*results)[i] = std::move(after);
  }
  if (missed.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("guest view: ", absl::StrJoin(missed, "; ")));
}

absl::Status Release(Context& c, ReleaseGuard& guard) {
  absl::Time t1 = absl::Now();
  guard.Disarm();
  absl::Status released = ReleaseAll(c.groups, c.options.step_deadline);
  c.report.release_all = absl::Now() - t1;
  // Prefer the VMs' own timing when every group has it (see GuestGroup::LastReleaseAll).
  absl::Duration measured = absl::ZeroDuration();
  bool all_measured = true;
  for (GuestGroup* g : c.groups) {
    std::optional<absl::Duration> d = g->LastReleaseAll();
    all_measured &= d.has_value();
    if (d) measured = std::max(measured, *d);
  }
  if (all_measured && !c.groups.empty()) c.report.release_all = measured;
  if (!released.ok()) return released;
  c.Emit(v1::STEP_RELEASED, absl::StrCat("released in ", absl::FormatDuration(c.report.release_all)));
  return absl::OkStatus();
}

// Strict mode holds every vCPU across the activation. A VM whose dead-man deadline is not
// longer than the predicted activation would release itself in the middle of it
// (vmm/kvm/vcpu_thread.cc, Parked()) and run on the new microcode with the old view:
// refuse before anything is parked or loaded.
absl::Status CheckDeadman(Context& c, const late_load::HostUpdatePlan& plan) {
  if (c.options.mode != v1::UPDATE_MODE_STRICT) return absl::OkStatus();
  const std::optional<absl::Duration> predicted = c.platform.PredictActivation(plan.update());
  if (!predicted) return absl::OkStatus();
  for (GuestGroup* g : c.groups) {
    const std::optional<absl::Duration> deadman = g->deadman();
    if (!deadman || *predicted < *deadman) continue;
    const std::string model = c.platform.ActivationModel();
    return absl::FailedPreconditionError(absl::StrFormat(
        "predicted activation %s (%s) is not shorter than the dead-man deadline %s of %s [%s]: "
        "its VMs would release themselves mid-activation; nothing parked, host untouched "
        "(fast mode parks only to set the view)",
        absl::FormatDuration(*predicted), model.empty() ? "the longest reload measured" : model,
        absl::FormatDuration(*deadman), g->kind(), absl::StrJoin(g->names(), ", ")));
  }
  return absl::OkStatus();
}

// The view step did not reach every vCPU: a dead-man released a VM while the host
// activated, so its vCPUs missed the release that carried the view (kMissedRelease). The
// host runs `revision` now: park those groups again only to set it. The guests ran on the
// new microcode with the old view in between, which the report says (views_atomic, a
// note); the first park's figures are kept. Any other failure (`first` without a missed
// release) is returned as it is.
absl::Status ResyncViews(Context& c, uint32_t revision, const absl::Status& first,
                         const std::vector<GuestViewResult>& results) {
  std::vector<GuestGroup*> lagging;
  for (size_t i = 0; i < results.size(); ++i) {
    if (MissedRelease(results[i])) lagging.push_back(c.groups[i]);
  }
  if (lagging.empty()) return first;
  UpdateReport& r = c.report;
  const absl::Duration park_all = r.park_all, set_views = r.set_views, release = r.release_all;
  Context again{c.platform, lagging, c.options, c.cb, r};
  ReleaseGuard guard(again.groups, c.options.step_deadline);
  absl::Status s = Park(again, guard);
  if (s.ok()) {
    std::vector<GuestViewResult> second;
    s = SetViews(again, revision, &second);
    absl::Status released = Release(again, guard);
    if (s.ok()) s = released;
    if (s.ok()) s = ViewsAfterRelease(again, &second);
  }
  r.park_all = park_all;
  r.set_views = set_views;
  r.release_all = release;
  if (!s.ok()) {
    return absl::Status(first.code(), absl::StrCat(first.message(),
                                                   "; setting the view again after the release "
                                                   "failed too: ", s.message()));
  }
  r.views_atomic = false;
  r.notes.push_back(absl::StrFormat(
      "guest views set to 0x%x NON-ATOMICALLY, in a second park after the VMs ran again: %s",
      revision, first.message()));
  return absl::OkStatus();
}

// Strict mode: every group parked before the host is touched, or none and the host as it
// was.
absl::Status ParkBeforeActivation(Context& c, ReleaseGuard& guard) {
  absl::Status parked = Park(c, guard);
  if (parked.ok()) return parked;
  return absl::Status(parked.code(), absl::StrCat("host load: before activation: ",
                                                  parked.message(), "; host untouched"));
}

// The activation itself: the rendezvous, or the reload write. Its result goes into the
// report, whatever its verdict.
const late_load::LateLoadResult& Activate(Context& c, late_load::PreparedLateLoad& load) {
  const absl::Time t0 = absl::Now();
  late_load::LateLoadResult result = load.Activate();
  c.report.host_call = absl::Now() - t0;
  c.report.host_touched = true;
  c.report.host.emplace();
  c.report.host->load = std::move(result);
  c.Emit(v1::STEP_ACTIVATED, c.report.host->load.summary);
  return c.report.host->load;
}

// While parked: the guest view every CPU agrees on, then release; a VM that missed the
// view (its dead-man released it) is parked again for it. Fails with the host load's own
// verdict first.
absl::Status SetViewAndRelease(Context& c, ReleaseGuard& guard,
                               const late_load::LateLoadResult& load) {
  const uint32_t revision = GuestViewRevision(load);
  const bool changed = revision != c.report.old_revision;
  std::vector<GuestViewResult> views;
  absl::Status view = changed ? SetViews(c, revision, &views) : absl::OkStatus();
  RETURN_IF_ERROR(Release(c, guard));
  if (view.ok() && changed) view = ViewsAfterRelease(c, &views);
  if (!view.ok()) view = ResyncViews(c, revision, view, views);
  if (!load.status.ok()) return WithContext("host load", load.status);
  return view;
}

absl::Status Verify(Context& c) {
  absl::Status host_verify = late_load::VerifyHostRevision(c.platform, c.report.new_revision);
  if (c.report.host) c.report.host->verify = host_verify;
  std::vector<GuestViewResult> views(c.groups.size());
  FanOut(c.groups, [&](GuestGroup& g, size_t i) {
    views[i] = g.VerifyGuestViews(c.report.new_revision, c.options.guest_view_timeout);
    return views[i].status;
  });
  std::vector<std::string> failed;
  if (!host_verify.ok()) failed.push_back(absl::StrCat("host: ", host_verify.message()));
  for (const GuestViewResult& v : views) {
    if (!v.status.ok()) failed.push_back(std::string(v.status.message()));
  }
  if (!failed.empty()) {
    return absl::InternalError(absl::StrCat("verify: ", absl::StrJoin(failed, "; ")));
  }
  // Say only what was checked: a view the VMM cannot change (QEMU) is stale, not verified.
  int stale = 0;
  for (const GuestViewResult& v : views) {
    for (const VmViewOutcome& vm : v.vms) stale += vm.status == ViewStatus::kStaleUntilRestart;
  }
  c.Emit(v1::STEP_VERIFIED,
         stale == 0 ? std::string("every host CPU and every guest view reports the new revision")
                    : absl::StrCat("every host CPU reports the new revision; ", stale,
                                   " guest view(s) stale until restart (their VMM cannot "
                                   "change MSR 0x8B)"));
  return absl::OkStatus();
}

absl::Status PrepareGroups(Context& c) {
  std::vector<absl::Status> ready = FanOut(c.groups, [&](GuestGroup& g, size_t) {
    return g.Prepare(c.options.guests_running_timeout);
  });
  for (const absl::Status& s : ready) {
    if (!s.ok()) return WithContext("guests not ready", s);
  }
  return absl::OkStatus();
}

// The host already runs `revision`: park, set every guest view to it, release, verify.
absl::Status SyncSteps(Context& c, uint32_t revision) {
  UpdateReport& r = c.report;
  r.old_revision = r.new_revision = revision;
  r.plan = absl::StrFormat("the host already runs 0x%x: set every guest view to it", revision);
  c.Emit(v1::STEP_VALIDATED, r.plan);
  RETURN_IF_ERROR(PrepareGroups(c));
  RETURN_IF_ERROR(c.Begin(v1::STEP_PARKED, "guest view sync: park, set guest view, release"));
  ReleaseGuard guard(c.groups, c.options.step_deadline);
  RETURN_IF_ERROR(Park(c, guard));
  std::vector<GuestViewResult> views;
  absl::Status view = SetViews(c, revision, &views);
  RETURN_IF_ERROR(Release(c, guard));
  RETURN_IF_ERROR(view);
  RETURN_IF_ERROR(ViewsAfterRelease(c, &views));
  RETURN_IF_ERROR(Verify(c));
  r.notes.push_back(absl::StrFormat(
      "the host already ran 0x%x: no load, only the guest views were set", revision));
  return absl::OkStatus();
}

// validate -> stage -> prepare agents -> prepare the host load -> park -> activate -> set
// view -> release -> verify -> notify. Strict parks before the activation, fast after.
absl::Status RunSteps(Context& c, std::vector<uint8_t> file) {
  // An update the host already took (e.g. a dead-man released the VMs before their view
  // was set): nothing to load, the guest views may still lag. With no VMs (a host-only
  // load) there is no view to sync: validation refuses the image as not newer.
  absl::StatusOr<bool> done = late_load::HostRunsNewestImage(c.platform, file);
  if (!done.ok()) return WithContext("validate", done.status());
  if (*done && !c.groups.empty()) {
    absl::StatusOr<microcode::CpuIdentity> host = late_load::HostIdentity(c.platform);
    if (!host.ok()) return WithContext("validate", host.status());
    return SyncSteps(c, host->current_revision);
  }
  absl::StatusOr<late_load::HostUpdatePlan> plan = Validate(c, std::move(file));
  if (!plan.ok()) return plan.status();
  RETURN_IF_ERROR(PrepareGroups(c));
  RETURN_IF_ERROR(Stage(c, *plan));
  c.report.agents_prepare = NotifyAll(c, AgentNotice::Phase::kPrepare);
  RETURN_IF_ERROR(CheckDeadman(c, *plan));
  RETURN_IF_ERROR(c.Begin(v1::STEP_PARKED, "rendezvous: park, activate, set guest view, release"));
  // Everything the activation needs, ready before anything is parked.
  absl::StatusOr<late_load::PreparedLateLoad> load =
      late_load::PrepareLateLoad(c.platform, plan->update(), c.options.late_load);
  if (!load.ok()) return WithContext("host load", load.status());  // host untouched
  ReleaseGuard guard(c.groups, c.options.step_deadline);
  const bool strict = c.options.mode == v1::UPDATE_MODE_STRICT;
  if (strict) RETURN_IF_ERROR(ParkBeforeActivation(c, guard));
  const late_load::LateLoadResult& result = Activate(c, *load);
  if (!strict) RETURN_IF_ERROR(Park(c, guard));
  RETURN_IF_ERROR(SetViewAndRelease(c, guard, result));
  RETURN_IF_ERROR(Verify(c));
  RETURN_IF_ERROR(c.Begin(v1::STEP_AGENTS_NOTIFIED, "notify guest agents: complete"));
  c.report.agents_complete = NotifyAll(c, AgentNotice::Phase::kComplete);
  c.Emit(v1::STEP_AGENTS_NOTIFIED, absl::StrCat(c.report.agents_complete.size(), " agents told"));
  return absl::OkStatus();
}

// The report's per-VM lines and totals, once the steps are over.
void Finish(Context& c, absl::Time start) {
  UpdateReport& report = c.report;
  for (GuestGroup* g : c.groups) {
    for (VmReport& vm : g->Report()) report.vms.push_back(std::move(vm));
    for (std::string& n : g->Notes()) report.notes.push_back(std::move(n));
  }
  if (report.host_touched) {
    for (const VmReport& vm : report.vms) report.held = std::max(report.held, vm.time_parked);
    report.overhead = report.held;
    if (c.options.mode == v1::UPDATE_MODE_STRICT) {
      report.overhead -= report.host->load.activation_window;
    }
  }
  report.total = absl::Now() - start;
  if (report.status.ok()) c.Emit(v1::STEP_DONE, absl::StrCat("done in ", absl::FormatDuration(report.total)));
}

}  // namespace

UpdateReport RunUpdate(platform::Platform& platform, std::vector<uint8_t> file,
                       absl::Span<GuestGroup* const> groups, const UpdateOptions& options,
                       const UpdateCallbacks& callbacks) {
  const absl::Time start = absl::Now();
  UpdateReport report;
  report.operation = options.operation;
  report.mode = options.mode;
  Context c{platform, groups, options, callbacks, report};
  report.status = RunSteps(c, std::move(file));
  Finish(c, start);
  return report;
}

UpdateReport StageUpdate(platform::Platform& platform, std::vector<uint8_t> file,
                         const UpdateOptions& options, const UpdateCallbacks& callbacks) {
  const absl::Time start = absl::Now();
  UpdateReport report;
  report.operation = options.operation;
  report.mode = options.mode;
  Context c{platform, {}, options, callbacks, report};
  absl::StatusOr<late_load::HostUpdatePlan> plan = Validate(c, std::move(file));
  report.status = plan.ok() ? StageImage(c, *plan) : plan.status();
  report.total = absl::Now() - start;
  return report;
}

UpdateReport SyncGuestViews(platform::Platform& platform, absl::Span<GuestGroup* const> groups,
                            const UpdateOptions& options, const UpdateCallbacks& callbacks) {
  const absl::Time start = absl::Now();
  UpdateReport report;
  report.operation = options.operation;
  report.mode = options.mode;
  Context c{platform, groups, options, callbacks, report};
  absl::StatusOr<microcode::CpuIdentity> host = late_load::HostIdentity(platform);
  report.status = host.ok() ? SyncSteps(c, host->current_revision)
                            : WithContext("read the host's revision", host.status());
  Finish(c, start);
  return report;
}

}  // namespace ucode::orchestrator
