#include "vmm/daemon/runner/orchestrator_runner.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "host/late_load/late_load.h"
#include "vmm/daemon/runner/host_description.h"
#include "vmm/inventory/held_events.h"
#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode::daemon {
namespace {

using orchestrator::Step;
using orchestrator::ToProto;

// How long a restarted daemon waits for the dead instance's VMMs, beyond their dead-man.
constexpr absl::Duration kConfirmSlack = absl::Seconds(3);

// The orchestrator's callbacks onto a StepSink and CancelToken: staging progress as its
// proto; STEP_DONE dropped (the daemon's own event carries the final state); the other
// events through `held` (inventory::HeldEvents, which may pass on the held window's with
// RELEASED).
orchestrator::UpdateCallbacks Relay(StepSink& sink, const CancelToken& cancel,
                                    inventory::HeldEvents& held) {
  orchestrator::UpdateCallbacks cb;
  cb.begin_step = [&sink](Step step, absl::string_view what) { return sink.BeginStep(step, what); };
  cb.emit = [&sink, &held](Step step, absl::string_view message,
                           const staging::StagingProgress* p) {
    if (p != nullptr) {
      ucode::v1::StagingProgress sp;
      sp.set_package(p->package);
      sp.set_bytes_sent(p->bytes_sent);
      sp.set_total_bytes(p->image_bytes);
      sp.set_chunk(p->chunks);
      sp.set_retransmits(p->retransmits);
      sink.Emit(ucode::v1::STEP_STAGING, message, &sp);
    } else if (step != v1::STEP_DONE) {
      held.Emit(step, message);
    }
  };
  cb.cancelled = [&cancel] { return cancel.Cancelled(); };
  return cb;
}

orchestrator::UpdateOptions OptionsFor(const ApplyParams& params, bool stage) {
  orchestrator::UpdateOptions o;
  o.operation = params.operation;
  o.mode = params.mode == v1::UPDATE_MODE_FAST ? v1::UPDATE_MODE_FAST : v1::UPDATE_MODE_STRICT;
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
                     inventory::LibvirtGuests::Open(
                         r->options_.libvirt_uri, r->options_.libvirt_domains,
                         {.pause = r->options_.libvirt_pause, .deadman = r->options_.deadman}));
  }
  r->RefreshSnapshot().status().IgnoreError();
  return r;
}

OrchestratorRunner::~OrchestratorRunner() = default;  // ManagedFleet stops the VMMs

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::Apply(const ApplyParams& params, StepSink& sink,
                                                      const CancelToken& cancel) {
  return RunOnGuests(params.operation, params.guests, params.mode, sink, cancel,
                     [&](absl::Span<orchestrator::GuestGroup* const> groups,
                         const orchestrator::UpdateCallbacks& cb) {
                       const orchestrator::UpdateOptions o = OptionsFor(params, options_.stage);
                       // An API apply is idempotent: the image the host runs already, with
                       // no guests named, is done (RunUpdate, like `ucodectl load`, would
                       // refuse it as not newer).
                       absl::StatusOr<bool> done =
                           late_load::HostRunsNewestImage(*options_.platform, params.image);
                       if (groups.empty() && done.ok() && *done) {
                         return orchestrator::SyncGuestViews(*options_.platform, groups, o, cb);
                       }
                       return orchestrator::RunUpdate(*options_.platform, params.image, groups,
                                                      o, cb);
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
  if (sel.fleet) groups.push_back(&fleet_->group());
  inventory::LibvirtApplyGroup libvirt;
  if (libvirt_ != nullptr && (sel.all_libvirt || !sel.libvirt.empty())) {
    // `operation` is the park marker inventory::ResumeAfterCrash looks for.
    ASSIGN_OR_RETURN(
        libvirt,
        libvirt_->Group(sel.libvirt, orchestrator::UpdateModeName(mode),
                        operation));
    if (libvirt.group != nullptr) groups.push_back(libvirt.group.get());
  }
  RefreshSnapshot().status().IgnoreError();
  busy_.store(true);
  inventory::HeldEvents held([&sink](const auto& e) { sink.Emit(e.step, e.message); },
                             options_.defer_parked_events);
  orchestrator::UpdateCallbacks cb = Relay(sink, cancel, held);
  cb.begin_step = [&](Step step, absl::string_view what) {
    // The domains about to be suspended go into the journal with the rendezvous row: no
    // dead-man releases them if this process dies (ConfirmGuestsRunning resumes them).
    absl::Status s = step == v1::STEP_PARKED
                         ? sink.BeginStep(step, what, libvirt.to_suspend)
                         : sink.BeginStep(step, what);
    if (s.ok() && step == v1::STEP_PARKED) holding_.store(true);
    return s;
  };
  cb.emit = [&, relay = std::move(cb.emit)](Step step, absl::string_view message,
                                            const staging::StagingProgress* p) {
    if (step == v1::STEP_RELEASED) holding_.store(false);
    relay(step, message, p);
  };
  orchestrator::UpdateReport report = run(groups, cb);
  held.Flush();
  holding_.store(false);
  busy_.store(false);
  RefreshSnapshot().status().IgnoreError();
  if (!repaired.empty()) report.notes.insert(report.notes.begin(), repaired);
  return ToProto(report);
}

absl::StatusOr<ucode::v1::UpdateReport> OrchestratorRunner::Stage(const StageParams& params, StepSink& sink,
                                                      const CancelToken& cancel) {
  platform::Platform& host = *options_.platform;
  if (!host.StagingLeftToKernel().empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stage: the ", host.name(), " platform stages inside the kernel's reload; apply instead"));
  }
  inventory::HeldEvents held([&sink](const auto& e) { sink.Emit(e.step, e.message); }, false);
  orchestrator::UpdateOptions o;
  o.operation = params.operation;
  busy_.store(true);
  orchestrator::UpdateReport report =
      orchestrator::StageUpdate(host, params.image, o, Relay(sink, cancel, held));
  busy_.store(false);
  RETURN_IF_ERROR(report.status);
  return ToProto(report);
}

absl::StatusOr<ucode::v1::Host> OrchestratorRunner::RefreshSnapshot() {
  ASSIGN_OR_RETURN(ucode::v1::Host host, DescribePlatform(*options_.platform));
  absl::MutexLock lock(&mu_);
  snapshot_ = host;
  return host;
}

absl::StatusOr<ucode::v1::Host> OrchestratorRunner::DescribeHost() {
  if (busy_.load()) {
    absl::MutexLock lock(&mu_);
    if (snapshot_.has_value()) return *snapshot_;
  }
  return RefreshSnapshot();
}

absl::StatusOr<std::string> OrchestratorRunner::ConfirmGuestsRunning(
    const InterruptedOperation& op) {
  // Every VM of the dead instance's fleet is checked, whatever step it died in.
  ASSIGN_OR_RETURN(std::string previous, inventory::ConfirmFleetReleased(
                                             previous_fleet_, options_.deadman + kConfirmSlack));
  int running = 0;
  size_t managed = 0;
  if (fleet_ != nullptr) {
    for (const std::string& state : fleet_->States()) running += state != "exited";
    managed = fleet_->specs().size();
  }
  std::string account =
      absl::StrCat(previous, "; this instance runs ", running, " of ", managed, " managed VMs");
  if (op.paused_domains.empty()) return account;
  absl::StatusOr<std::string> libvirt = inventory::ResumeAfterCrash(
      libvirt_.get(), op.paused_domains, op.operation, op.interrupted_step, op.last_step);
  if (!libvirt.ok()) {
    return absl::Status(libvirt.status().code(),
                        absl::StrCat(account, "; ", libvirt.status().message()));
  }
  return absl::StrCat(account, "; ", *libvirt);
}

}  // namespace ucode::daemon
