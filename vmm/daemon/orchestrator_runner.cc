#include "vmm/daemon/orchestrator_runner.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "host/late_load/host_update.h"
#include "host/base/private_files.h"
#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode::daemon {
namespace {

using orchestrator::Step;

// How long a restarted daemon waits for the dead instance's VMMs, beyond their dead-man.
constexpr absl::Duration kConfirmSlack = absl::Seconds(3);
// How long a restarted daemon waits for each libvirt domain it resumes to acknowledge.
constexpr absl::Duration kResumeDeadline = absl::Seconds(10);

// The orchestrator's emit callback onto a StepSink. STEP_DONE is the daemon's own event
// (it carries the final state), so the orchestrator's is dropped. With `defer`, the
// events of the held window are passed on together with RELEASED (or at Flush).
class EventRelay {
 public:
  EventRelay(StepSink& sink, bool defer) : sink_(sink), defer_(defer) {}

  void Emit(Step step, absl::string_view message, const staging::StagingProgress* p) {
    if (step == Step::kDone) return;
    if (p != nullptr) {
      ucode::v1::StagingProgress sp;
      sp.set_package(p->package);
      sp.set_bytes_sent(p->bytes_sent);
      sp.set_total_bytes(p->image_bytes);
      sp.set_chunk(p->chunks);
      sp.set_retransmits(p->retransmits);
      sink_.Emit(ucode::v1::STEP_STAGING, message, &sp);
      return;
    }
    // Called from the operation thread only (staging progress took the branch above).
    if (defer_ && (step == Step::kParked || !held_.empty())) {
      held_.push_back({step, std::string(message)});
      if (step != Step::kReleased) return;
      Flush();
      return;
    }
    sink_.Emit(ToProto(step), message);
  }

  void Flush() {
    for (const auto& [step, message] : held_) sink_.Emit(ToProto(step), message);
    held_.clear();
  }

 private:
  StepSink& sink_;
  const bool defer_;
  std::vector<std::pair<Step, std::string>> held_;
};

orchestrator::UpdateOptions OptionsFor(const ApplyParams& params, bool stage) {
  orchestrator::UpdateOptions o;
  o.operation = params.operation;
  o.mode = params.mode == ucode::v1::UPDATE_MODE_FAST ? orchestrator::UpdateMode::kFast
                                                      : orchestrator::UpdateMode::kStrict;
  o.policy = params.min_rev_policy == ucode::v1::MIN_REV_POLICY_IGNORE
                 ? microcode::MinRevPolicy::kIgnore
                 : microcode::MinRevPolicy::kEnforce;
  o.stage = stage;
  if (params.park_deadline > absl::ZeroDuration()) o.park_deadline = params.park_deadline;
  if (params.agent_timeout > absl::ZeroDuration()) o.agent_timeout = params.agent_timeout;
  return o;
}

}  // namespace

OrchestratorRunner::OrchestratorRunner(OrchestratorRunnerOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<OrchestratorRunner>> OrchestratorRunner::Create(
    OrchestratorRunnerOptions options) {
  if (options.platform == nullptr) return absl::InvalidArgumentError("no platform");
  std::unique_ptr<OrchestratorRunner> r(new OrchestratorRunner(std::move(options)));
  RETURN_IF_ERROR(r->StartFleet());
  if (!r->options_.libvirt_uri.empty()) {
    ASSIGN_OR_RETURN(r->libvirt_,
                     LibvirtGuests::Open(r->options_.libvirt_uri, r->options_.libvirt_domains));
  }
  r->RefreshSnapshot();
  return r;
}

OrchestratorRunner::~OrchestratorRunner() {
  if (coordinator_ != nullptr) {
    absl::Status s = coordinator_->Shutdown();
    (void)s;  // the VMMs are reaped either way (SIGKILL after the grace period)
  }
}

absl::StatusOr<OrchestratorRunner::GuestSelection> OrchestratorRunner::SelectGuests(
    const std::vector<std::string>& guests) const {
  GuestSelection sel;
  if (guests.empty()) {
    sel.fleet = fleet_group_ != nullptr;
    sel.all_libvirt = libvirt_ != nullptr;
    return sel;
  }
  std::vector<std::string> fleet;
  for (const rendezvous::VmSpec& s : specs_) fleet.push_back(s.name);
  std::vector<std::string> domains;
  if (libvirt_ != nullptr) {
    absl::StatusOr<std::vector<std::string>> names = libvirt_->Names();
    if (!names.ok()) {
      return absl::UnavailableError(absl::StrCat("guests: ", names.status().message()));
    }
    domains = *std::move(names);
  }
  const auto has = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  size_t fleet_named = 0;
  for (const std::string& g : guests) {
    if (has(fleet, g)) {
      ++fleet_named;
    } else if (has(domains, g)) {
      if (!has(sel.libvirt, g)) sel.libvirt.push_back(g);
    } else {
      std::vector<std::string> known = fleet;
      known.insert(known.end(), domains.begin(), domains.end());
      return absl::InvalidArgumentError(absl::StrCat("guests: '", g, "' is not a managed guest (",
                                                     absl::StrJoin(known, ", "), ")"));
    }
  }
  // The fleet parks as one rendezvous group; a VM left running would keep a stale view.
  if (fleet_named != 0 && fleet_named < fleet.size()) {
    return absl::InvalidArgumentError(
        "guests: the ucode-vmm fleet is parked as one group; name all of its VMs or none");
  }
  sel.fleet = fleet_named != 0;
  return sel;
}

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::Apply(const ApplyParams& params, StepSink& sink,
                                                      const CancelToken& cancel) {
  return RunOnGuests(params.operation, params.guests, params.mode, sink, cancel,
                     [&](absl::Span<orchestrator::GuestGroup* const> groups,
                         const orchestrator::UpdateCallbacks& cb) {
                       return orchestrator::RunUpdate(*options_.platform, params.image, groups,
                                                      OptionsFor(params, options_.stage), cb);
                     });
}

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::SyncGuestViews(const SyncParams& params,
                                                               StepSink& sink,
                                                               const CancelToken& cancel) {
  orchestrator::UpdateOptions o;
  o.operation = params.operation;
  if (params.park_deadline > absl::ZeroDuration()) o.park_deadline = params.park_deadline;
  return RunOnGuests(params.operation, params.guests, ucode::v1::UPDATE_MODE_STRICT, sink, cancel,
                     [&](absl::Span<orchestrator::GuestGroup* const> groups,
                         const orchestrator::UpdateCallbacks& cb) {
                       return orchestrator::SyncGuestViews(*options_.platform, groups, o, cb);
                     });
}

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::RunOnGuests(
    const std::string& operation, const std::vector<std::string>& guests,
    ucode::v1::UpdateMode mode, StepSink& sink, const CancelToken& cancel, const RunFn& run) {
  absl::MutexLock fleet(&fleet_mu_);
  ASSIGN_OR_RETURN(GuestSelection sel, SelectGuests(guests));
  std::string repaired;
  if (sel.fleet) {
    ASSIGN_OR_RETURN(repaired, RepairFleet());
  }
  std::vector<orchestrator::GuestGroup*> groups;
  if (sel.fleet) groups.push_back(fleet_group_.get());
  LibvirtApplyGroup libvirt;
  if (libvirt_ != nullptr && (sel.all_libvirt || !sel.libvirt.empty())) {
    orchestrator::LibvirtGroupOptions lo;
    lo.mode = mode == ucode::v1::UPDATE_MODE_FAST ? "fast" : "strict";
    lo.pause = options_.libvirt_pause;
    lo.freeze.hold_limit = options_.deadman;
    lo.operation = operation;  // the park marker ConfirmLibvirtResumed looks for
    ASSIGN_OR_RETURN(libvirt, libvirt_->Group(sel.libvirt, lo));
    if (libvirt.group != nullptr) groups.push_back(libvirt.group.get());
  }
  RefreshSnapshot();
  busy_.store(true);
  EventRelay relay(sink, options_.defer_parked_events);
  orchestrator::UpdateCallbacks cb;
  cb.begin_step = [&](Step step, absl::string_view what) {
    // The domains about to be suspended go into the journal with the rendezvous row: no
    // dead-man releases them if this process dies (ConfirmGuestsRunning resumes them).
    absl::Status s = step == Step::kParked
                         ? sink.BeginStep(ToProto(step), what, libvirt.to_suspend)
                         : sink.BeginStep(ToProto(step), what);
    if (s.ok() && step == Step::kParked) holding_.store(true);
    return s;
  };
  cb.emit = [&](Step step, absl::string_view message, const staging::StagingProgress* p) {
    if (step == Step::kReleased) holding_.store(false);
    relay.Emit(step, message, p);
  };
  cb.cancelled = [&cancel] { return cancel.Cancelled(); };
  orchestrator::UpdateReport report = run(groups, cb);
  relay.Flush();
  holding_.store(false);
  busy_.store(false);
  RefreshSnapshot();
  if (!repaired.empty()) report.notes.insert(report.notes.begin(), repaired);
  return orchestrator::ToProto(report);
}

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::Stage(const StageParams& params, StepSink& sink,
                                                      const CancelToken& cancel) {
  platform::Platform& host = *options_.platform;
  if (!host.HasDirectTrigger()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stage: the ", host.name(), " platform stages inside the kernel's reload; apply instead"));
  }
  ASSIGN_OR_RETURN(
      late_load::HostUpdatePlan plan,
      late_load::PlanHostUpdate(host, params.image, microcode::MinRevPolicy::kEnforce));
  orchestrator::UpdateReport report;
  report.operation = params.operation;
  orchestrator::SetImage(report, plan);
  sink.Emit(ucode::v1::STEP_VALIDATED, report.plan);
  if (cancel.Cancelled()) return absl::CancelledError("cancelled before staging");
  RETURN_IF_ERROR(sink.BeginStep(ucode::v1::STEP_STAGING, report.plan));
  EventRelay relay(sink, false);
  staging::StagingOptions opts;
  opts.progress = [&relay](const staging::StagingProgress& p) {
    relay.Emit(Step::kStaging, absl::StrCat("package ", p.package), &p);
  };
  opts.cancelled = [&cancel] { return cancel.Cancelled(); };
  busy_.store(true);
  report.staging = late_load::StageHostUpdate(host, plan, opts);
  busy_.store(false);
  if (cancel.Cancelled()) {
    return absl::CancelledError(
        absl::StrCat("cancelled during staging: ", report.staging->Summary()));
  }
  report.last_step = Step::kStaged;
  sink.Emit(ucode::v1::STEP_STAGED, report.staging->Summary());
  return orchestrator::ToProto(report);
}

absl::StatusOr<ucode::v1::Host> OrchestratorRunner::ReadHost() {
  platform::Platform& p = *options_.platform;
  ASSIGN_OR_RETURN(platform::Topology topo, p.GetTopology());
  ucode::v1::Host host;
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  host.set_hostname(name);
  host.set_platform_backend(p.name());
  bool identified = false;
  for (const platform::LogicalCpu& c : topo.cpus) {
    ucode::v1::LogicalCpu* out = host.add_cpus();
    out->set_id(c.id);
    out->set_package(std::max(c.package, 0));
    out->set_core(c.core);
    out->set_thread(c.thread);
    out->set_online(c.online);
    if (!c.online) continue;
    absl::StatusOr<microcode::CpuIdentity> id = p.Identity(c.id);
    if (!id.ok()) continue;
    out->set_revision(id->current_revision);
    if (!identified) {
      identified = true;
      host.set_signature(id->signature);
      host.set_platform_id(id->platform_id);
      absl::StatusOr<uint64_t> arch = p.ReadMsr(c.id, platform::kMsrArchCapabilities);
      absl::StatusOr<uint64_t> mcu = p.ReadMsr(c.id, platform::kMsrMcuEnumeration);
      host.set_staging_supported(arch.ok() && mcu.ok() &&
                                 (*arch & platform::kArchCapMcuEnumeration) != 0 &&
                                 (*mcu & platform::kMcuEnumerationStaging) != 0);
    }
  }
  return host;
}

void OrchestratorRunner::RefreshSnapshot() {
  absl::StatusOr<ucode::v1::Host> host = ReadHost();
  if (!host.ok()) return;
  absl::MutexLock lock(&mu_);
  snapshot_ = std::move(*host);
}

absl::StatusOr<ucode::v1::Host> OrchestratorRunner::DescribeHost() {
  if (busy_.load()) {
    absl::MutexLock lock(&mu_);
    if (snapshot_.has_value()) return *snapshot_;
  }
  ASSIGN_OR_RETURN(ucode::v1::Host host, ReadHost());
  absl::MutexLock lock(&mu_);
  snapshot_ = host;
  return host;
}

absl::StatusOr<std::string> OrchestratorRunner::ConfirmGuestsRunning(
    const InterruptedOperation& op) {
  // Every VM of the dead instance's fleet is checked, whatever step it died in.
  ASSIGN_OR_RETURN(std::string previous,
                   ConfirmFleetReleased(previous_fleet_, options_.deadman + kConfirmSlack));
  int running = 0;
  const std::vector<pid_t> pids = vmm_pids();
  for (size_t i = 0; i < specs_.size(); ++i) running += VmmAlive(pids[i], specs_[i].name);
  std::string account = absl::StrCat(previous, "; this instance runs ", running, " of ",
                                     specs_.size(), " managed VMs");
  if (op.paused_domains.empty()) return account;
  absl::StatusOr<std::string> libvirt = ConfirmLibvirtResumed(op);
  if (!libvirt.ok()) {
    return absl::Status(libvirt.status().code(),
                        absl::StrCat(account, "; ", libvirt.status().message()));
  }
  return absl::StrCat(account, "; ", *libvirt);
}

absl::StatusOr<std::string> OrchestratorRunner::ConfirmLibvirtResumed(
    const InterruptedOperation& op) const {
  const std::string names = absl::StrJoin(op.paused_domains, ", ");
  // STEP_RELEASED is journaled only after every group released: if the journal holds it,
  // the dead instance resumed its domains itself, and one paused now was paused by
  // someone else since.
  const bool held = op.interrupted_step == ucode::v1::STEP_PARKED ||
                    (op.last_step >= ucode::v1::STEP_PARKED &&
                     op.last_step < ucode::v1::STEP_RELEASED);
  if (!held) {
    return absl::StrCat("libvirt: the operation released its domains (", names,
                        ") before it was interrupted; none touched");
  }
  if (libvirt_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("libvirt: the operation paused ", names,
                     " but this ucoded has no --libvirt_uri: resume them by hand"));
  }
  return libvirt_->ResumePaused(op.paused_domains, op.operation, kResumeDeadline);
}

}  // namespace ucode::daemon
