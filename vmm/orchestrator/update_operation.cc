#include "vmm/orchestrator/update_operation.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"
#include "host/late_load/host_update.h"
#include "vmm/orchestrator/group_fan_out.h"

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

// Staging is opportunistic: a failed package is reported and the load goes on unstaged.
absl::Status Stage(Context& c, const late_load::HostUpdatePlan& plan) {
  if (!c.options.stage) {
    c.report.notes.push_back("staging skipped (--no-stage): activation loads unstaged");
    return absl::OkStatus();
  }
  if (!c.platform.HasDirectTrigger()) {
    c.report.notes.push_back("staging left to the kernel (Linux stages by itself)");
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(c.Begin(Step::kStaging, plan.Describe()));
  staging::StagingOptions opts = c.options.staging;
  opts.progress = nullptr;
  if (c.cb.emit) {
    auto emit = c.cb.emit;
    opts.progress = [emit](const staging::StagingProgress& p) {
      emit(Step::kStaging, absl::StrCat("package ", p.package), &p);
    };
  }
  c.report.staging = late_load::StageHostUpdate(c.platform, plan, opts);
  if (!c.report.staging->all_staged()) {
    c.report.notes.push_back(absl::StrCat(c.report.staging->Summary(),
                                          ": activation on those packages loads unstaged"));
  }
  c.Emit(Step::kStaged, c.report.staging->Summary());
  return absl::OkStatus();
}

std::vector<AgentReply> NotifyAll(Context& c, AgentNotice::Phase phase) {
  AgentNotice notice{.phase = phase,
                     .operation_id = c.options.operation,
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
// it, else the lowest one any CPU runs (never tell a guest more than the host does).
uint32_t GuestViewRevision(const late_load::LateLoadResult& load) {
  if (load.status.ok()) return load.new_revision;
  uint32_t lowest = load.new_revision;
  for (const late_load::CpuResult& cpu : load.cpus) {
    if (cpu.revision_after != 0) lowest = std::min(lowest, cpu.revision_after);
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
  c.Emit(Step::kParked, absl::StrCat("parked ", vcpus, " vCPUs in ",
                                     absl::FormatDuration(c.report.park_all)));
  return absl::OkStatus();
}

// While parked: the guest view, then release. Returns the view status; release errors
// are folded in.
absl::Status SetViewAndRelease(Context& c, ReleaseGuard& guard, uint32_t revision) {
  absl::Status view = absl::OkStatus();
  if (revision != c.report.old_revision) {
    absl::Time t0 = absl::Now();
    std::vector<GuestViewResult> results;
    view = SetRevisionAll(c.groups, revision, c.options.step_deadline, &results);
    c.report.set_views = absl::Now() - t0;
    if (view.ok()) c.Emit(Step::kGuestViewsSet, absl::StrFormat("MSR 0x8B = 0x%x", revision));
  }
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
  c.Emit(Step::kReleased, absl::StrCat("released in ", absl::FormatDuration(c.report.release_all)));
  return view;
}

absl::Status Rendezvous(Context& c, const late_load::HostUpdatePlan& plan) {
  RETURN_IF_ERROR(c.Begin(Step::kParked, "rendezvous: park, activate, set guest view, release"));
  ReleaseGuard guard(c.groups, c.options.step_deadline);
  late_load::LateLoadHooks hooks;
  const bool strict = c.options.mode == UpdateMode::kStrict;
  absl::Time parked_at;
  if (strict) {
    hooks.before_activation = [&] {
      RETURN_IF_ERROR(Park(c, guard));
      parked_at = absl::Now();
      return absl::OkStatus();
    };
  }
  absl::Time t0 = absl::Now();
  absl::StatusOr<late_load::LateLoadResult> load =
      late_load::RunLateLoad(c.platform, plan.update(), hooks, c.options.late_load);
  c.report.host_call = absl::Now() - (strict && parked_at != absl::Time() ? parked_at : t0);
  if (!load.ok()) return WithContext("host load", load.status());  // host untouched
  c.report.host_touched = true;
  c.report.host.emplace();
  c.report.host->load = std::move(*load);
  late_load::LateLoadResult& l = c.report.host->load;
  l.model_parameters = c.platform.ActivationModel();
  c.Emit(Step::kActivated, l.summary);
  if (!strict) RETURN_IF_ERROR(Park(c, guard));
  absl::Status view = SetViewAndRelease(c, guard, GuestViewRevision(l));
  if (!l.status.ok()) return WithContext("host load", l.status);
  return view;
}

absl::Status Verify(Context& c) {
  late_load::HostLoadReport& host = *c.report.host;
  host.verify = late_load::VerifyHostRevision(c.platform, c.report.new_revision);
  std::vector<GuestViewResult> views(c.groups.size());
  FanOut(c.groups, [&](GuestGroup& g, size_t i) {
    views[i] = g.VerifyGuestViews(c.report.new_revision, c.options.guest_view_timeout);
    return views[i].status;
  });
  std::vector<std::string> failed;
  if (!host.verify.ok()) failed.push_back(absl::StrCat("host: ", host.verify.message()));
  for (const GuestViewResult& v : views) {
    if (!v.status.ok()) failed.push_back(std::string(v.status.message()));
  }
  if (!failed.empty()) {
    return absl::InternalError(absl::StrCat("verify: ", absl::StrJoin(failed, "; ")));
  }
  c.Emit(Step::kVerified, "every host CPU and every guest view reports the new revision");
  return absl::OkStatus();
}

absl::Status RunSteps(Context& c, std::vector<uint8_t> file) {
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
  c.Emit(Step::kValidated, r.plan);

  std::vector<absl::Status> ready = FanOut(c.groups, [&](GuestGroup& g, size_t) {
    return g.Prepare(c.options.guests_running_timeout);
  });
  for (const absl::Status& s : ready) {
    if (!s.ok()) return WithContext("guests not ready", s);
  }
  RETURN_IF_ERROR(Stage(c, *plan));
  r.agents_prepare = NotifyAll(c, AgentNotice::Phase::kPrepare);
  RETURN_IF_ERROR(Rendezvous(c, *plan));
  RETURN_IF_ERROR(Verify(c));
  RETURN_IF_ERROR(c.Begin(Step::kAgentsNotified, "notify guest agents: complete"));
  r.agents_complete = NotifyAll(c, AgentNotice::Phase::kComplete);
  c.Emit(Step::kAgentsNotified, absl::StrCat(r.agents_complete.size(), " agents told"));
  return absl::OkStatus();
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
  for (GuestGroup* g : groups) {
    for (VmReport& vm : g->Report()) report.vms.push_back(std::move(vm));
    for (std::string& n : g->Notes()) report.notes.push_back(std::move(n));
  }
  if (report.host_touched) {
    for (const VmReport& vm : report.vms) report.held = std::max(report.held, vm.time_parked);
    report.overhead = report.held;
    if (options.mode == UpdateMode::kStrict) {
      report.overhead -= report.host->load.activation_window;
    }
  }
  report.total = absl::Now() - start;
  if (report.status.ok()) c.Emit(Step::kDone, absl::StrCat("done in ", absl::FormatDuration(report.total)));
  return report;
}

}  // namespace ucode::orchestrator
