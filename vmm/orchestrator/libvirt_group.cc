#include "vmm/orchestrator/libvirt_group.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"
#include "vmm/libvirt/agent_call.h"
#include "vmm/orchestrator/suspend_pauser.h"

namespace ucode::orchestrator {
namespace {

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

// libvirt's agent timeout is whole seconds and a silent agent may cost it twice (sync +
// command), so each call gets half the budget, rounded down, at least 1 s; the wait for
// the calls is bounded by the whole budget regardless.
absl::Duration CallTimeout(absl::Duration budget) {
  return std::max(absl::Seconds(1), absl::Floor(budget / 2, absl::Seconds(1)));
}

// The prepare hooks must finish before libvirt gives up on the command.
int64_t HookDeadlineMs(absl::Duration budget) {
  const absl::Duration d = std::min(CallTimeout(budget), budget) * 3 / 4;
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(d));
}

// The "blackout" object of a complete reply (guest-agent/README.md), if well-formed.
std::optional<GuestBlackout> ReadBlackout(const nlohmann::json& r) {
  auto it = r.find("blackout");
  if (it == r.end() || !it->is_object()) return std::nullopt;
  const nlohmann::json& b = *it;
  auto ns = [&](const char* key) -> std::optional<absl::Duration> {
    auto f = b.find(key);
    if (f == b.end() || !f->is_number_integer() || f->get<int64_t>() < 0) return std::nullopt;
    return absl::Nanoseconds(f->get<int64_t>());
  };
  auto clock = b.find("clock");
  std::optional<absl::Duration> pause = ns("pause-gap-ns");
  std::optional<absl::Duration> baseline = ns("baseline-gap-ns");
  std::optional<absl::Duration> max = ns("max-gap-ns");
  if (clock == b.end() || !clock->is_string() || !pause || !baseline || !max) return std::nullopt;
  const std::string name = clock->get<std::string>().substr(0, 32);
  return GuestBlackout{.clock = name, .pause_gap = *pause, .baseline_gap = *baseline, .max_gap = *max};
}

// The agent's {"return": ...} for prepare/complete as an AgentReply verdict; a complete
// reply's blackout measurement goes to `blackout`.
void ReadAnswer(AgentNotice::Phase phase, const std::string& text, AgentReply& out,
                std::optional<GuestBlackout>& blackout) {
  out.answered = true;
  nlohmann::json reply = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!reply.is_object() || !reply.contains("return") || !reply["return"].is_object()) {
    out.status = absl::DataLossError(absl::StrCat("unreadable agent reply: ", text.substr(0, 200)));
    out.message = "unreadable";
    return;
  }
  const nlohmann::json& r = reply["return"];
  auto str = [&](const char* key) {
    auto it = r.find(key);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (phase == AgentNotice::Phase::kPrepare) {
    const std::string status = str("status");
    if (status == "ready") {
      out.message = "ready";
    } else {
      out.status = absl::FailedPreconditionError(
          absl::StrCat("prepare hook ", str("hook"), " failed: ", str("reason")));
      out.message = status.empty() ? "refused" : status;
    }
    return;
  }
  out.message = "recorded";
  blackout = ReadBlackout(r);
}

}  // namespace

struct LibvirtGuestGroup::NotifyState {
  absl::Mutex mu;
  std::vector<AgentReply> replies ABSL_GUARDED_BY(mu);
  std::vector<bool> done ABSL_GUARDED_BY(mu);
  std::vector<std::optional<GuestBlackout>> blackout ABSL_GUARDED_BY(mu);
  int remaining ABSL_GUARDED_BY(mu) = 0;
};

absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> LibvirtGuestGroup::Create(
    const libvirt::Connection& conn, std::vector<libvirt::Domain> domains,
    LibvirtGroupOptions options) {
  if (options.host.empty()) options.host = Hostname();
  std::unique_ptr<LibvirtGuestGroup> g(new LibvirtGuestGroup(conn, std::move(options)));
  const PauseMode mode = g->options_.pause;
  absl::Status freezer = mode == PauseMode::kSuspend
                             ? absl::OkStatus()
                             : KernelFreezerAvailable(g->options_.freeze.mountinfo_path);
  if (mode == PauseMode::kFreeze && !freezer.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("--pause freeze: ", freezer.message()));
  }
  if (mode == PauseMode::kSuspend || !freezer.ok()) {
    g->pauser_ = std::make_unique<SuspendPauser>(conn, g->options_.operation);
    if (!freezer.ok()) {
      g->notes_.push_back(absl::StrCat("domains suspended, not frozen: ", freezer.message()));
    }
  } else {
    g->pauser_ = std::make_unique<FreezePauser>(g->options_.freeze);
  }
  for (const libvirt::Domain& d : domains) {
    ASSIGN_OR_RETURN(int vcpus, d.VcpuCount());
    Vm vm{.vcpus = vcpus};
    vm.view.name = d.name();
    g->vms_.push_back(std::move(vm));
  }
  g->domains_ = std::move(domains);
  return g;
}

LibvirtGuestGroup::~LibvirtGuestGroup() {
  for (std::thread& t : agent_threads_) t.join();
}

std::vector<std::string> LibvirtGuestGroup::names() const {
  std::vector<std::string> out;
  for (const libvirt::Domain& d : domains_) out.push_back(d.name());
  return out;
}

int LibvirtGuestGroup::total_vcpus() const {
  int n = 0;
  for (const Vm& vm : vms_) n += vm.vcpus;
  return n;
}

absl::Status LibvirtGuestGroup::Prepare(absl::Duration /*timeout*/) {
  std::vector<std::string> bad;
  for (const libvirt::Domain& d : domains_) {
    absl::StatusOr<int> state = d.State();
    if (!state.ok()) {
      bad.push_back(std::string(state.status().message()));
    } else if (*state != libvirt::kDomainRunning && *state != libvirt::kDomainPaused) {
      bad.push_back(absl::StrCat(d.name(), " is neither running nor paused (",
                                 libvirt::DomainStateName(*state), ")"));
    }
  }
  if (!bad.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("libvirt: ", absl::StrJoin(bad, "; ")));
  }
  return PreparePauser();
}

absl::Status LibvirtGuestGroup::PreparePauser() {
  std::vector<int> vcpus;
  for (const Vm& vm : vms_) vcpus.push_back(vm.vcpus);
  absl::Status s = pauser_->Prepare(domains_, vcpus);
  // --pause auto: a host without a freezer, or domains whose QEMU is not on this host
  // (a remote URI), are suspended instead; a domain whose vCPU threads do not add up is an
  // error, never a silent fallback.
  if (!s.ok() && options_.pause == PauseMode::kAuto &&
      (absl::IsUnimplemented(s) || absl::IsNotFound(s))) {
    notes_.push_back(absl::StrCat("domains suspended, not frozen: ", s.message()));
    pauser_ = std::make_unique<SuspendPauser>(conn_, options_.operation);
    s = pauser_->Prepare(domains_, vcpus);
  }
  pauser_prepared_ = s.ok();
  if (s.ok()) notes_.push_back(absl::StrCat("libvirt domains: pause=", pauser_->Describe()));
  return s;
}

absl::Status LibvirtGuestGroup::Park(absl::Duration deadline) {
  // The orchestrator prepares first; a caller that did not pays for it here, unclocked.
  if (!pauser_prepared_) {
    absl::Status s = PreparePauser();
    if (!s.ok()) return absl::AbortedError(s.message());
  }
  for (Vm& vm : vms_) {
    vm.parked_by_us = vm.paused_by_other = false;
    vm.parked_at = vm.released_at = vm.release_start = absl::InfinitePast();
  }
  const absl::Time start = absl::Now();
  std::vector<PauseOutcome> results = pauser_->Pause(domains_, deadline);
  std::vector<std::string> failed;
  for (size_t i = 0; i < vms_.size(); ++i) {
    Vm& vm = vms_[i];
    const PauseOutcome& r = results[i];
    vm.park_start = start;
    if (!r.warning.empty()) notes_.push_back(r.warning);
    if (r.paused_by_other) {
      vm.paused_by_other = true;
      continue;
    }
    // A failed suspend may still have paused the domain (a missing ack): resume it too.
    vm.parked_by_us = true;
    vm.parked_at = start + r.latency;
    if (!r.status.ok()) failed.push_back(absl::StrCat(vm.view.name, ": ", r.status.message()));
  }
  if (failed.empty()) return absl::OkStatus();
  std::vector<std::string> not_resumed = ResumeOurs(deadline);
  std::string msg = absl::StrCat("libvirt (", pauser_->name(), "): ", failed.size(), " of ",
                                 vms_.size(), " domains did not park (",
                                 absl::StrJoin(failed, "; "),
                                 "); released the ones this operation held");
  if (!not_resumed.empty()) {
    absl::StrAppend(&msg, "; RESUME FAILED for ", absl::StrJoin(not_resumed, "; "));
  }
  return absl::AbortedError(msg);
}

std::vector<std::string> LibvirtGuestGroup::ResumeOurs(absl::Duration deadline) {
  std::vector<bool> which;
  for (const Vm& vm : vms_) which.push_back(vm.parked_by_us);
  std::vector<std::string> failed;
  if (std::find(which.begin(), which.end(), true) == which.end()) return failed;
  const absl::Time start = absl::Now();
  std::vector<PauseOutcome> results = pauser_->Resume(domains_, which, deadline);
  for (size_t i = 0; i < vms_.size(); ++i) {
    if (!which[i]) continue;
    Vm& vm = vms_[i];
    const PauseOutcome& r = results[i];
    vm.release_start = start;
    if (!r.warning.empty()) notes_.push_back(r.warning);
    if (!r.status.ok()) {
      failed.push_back(absl::StrCat(vm.view.name, ": ", r.status.message()));
      continue;
    }
    vm.parked_by_us = false;
    vm.released_at = start + r.latency;
  }
  return failed;
}

absl::Status LibvirtGuestGroup::Release(absl::Duration deadline) {
  std::vector<std::string> failed = ResumeOurs(deadline);
  if (failed.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("libvirt (", pauser_->name(),
                                             "): release failed for ", absl::StrJoin(failed, "; ")));
}

GuestViewResult LibvirtGuestGroup::SetRevision(uint32_t /*revision*/, absl::Duration /*deadline*/) {
  GuestViewResult r;
  for (Vm& vm : vms_) {
    vm.view.status = ViewStatus::kStaleUntilRestart;
    vm.view.detail = kQemuStaleDetail;
    if (vm.paused_by_other) {
      absl::StrAppend(&vm.view.detail, "; was paused by someone else, left paused");
    }
    r.vms.push_back(vm.view);
  }
  return r;
}

GuestViewResult LibvirtGuestGroup::VerifyGuestViews(uint32_t /*revision*/,
                                                    absl::Duration /*timeout*/) {
  GuestViewResult r;
  for (const Vm& vm : vms_) r.vms.push_back(vm.view);
  return r;
}

std::vector<VmReport> LibvirtGuestGroup::Report() {
  if (pauser_->TakeDeadmanReleases() > 0) {
    for (Vm& vm : vms_) {
      if (vm.parked_at != absl::InfinitePast()) vm.deadman_releases = vm.vcpus;
    }
  }
  std::vector<VmReport> out;
  for (const Vm& vm : vms_) {
    VmReport r;
    r.kind = kind();
    r.name = vm.view.name;
    r.vcpus = vm.vcpus;
    if (vm.parked_at != absl::InfinitePast()) r.park_latency = vm.parked_at - vm.park_start;
    if (vm.parked_at != absl::InfinitePast() && vm.released_at != absl::InfinitePast()) {
      r.time_parked = vm.released_at - vm.parked_at;
    }
    r.guest_measured = false;
    r.pause = pauser_->name();
    r.deadman_releases = vm.deadman_releases;
    if (vm.blackout) {
      r.guest_blackout = vm.blackout->pause_gap;
      r.blackout_clock = vm.blackout->clock;
      r.baseline_gap = vm.blackout->baseline_gap;
      r.max_gap = vm.blackout->max_gap;
    }
    r.view = vm.view.status;
    r.view_detail = vm.view.detail;
    if (vm.paused_by_other && r.view_detail.empty()) {
      r.view_detail = "was paused by someone else, left paused";
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string LibvirtGuestGroup::AgentCommandJson(const AgentNotice& notice,
                                                absl::Duration timeout) const {
  nlohmann::json args = {{"old-revision", notice.old_revision},
                         {"new-revision", notice.new_revision},
                         {"host", options_.host}};
  if (!options_.mode.empty()) args["mode"] = options_.mode;
  nlohmann::json cmd;
  if (notice.phase == AgentNotice::Phase::kPrepare) {
    args["deadline-ms"] = HookDeadlineMs(timeout);
    if (options_.measure_window > absl::ZeroDuration()) {
      args["measure-ms"] = absl::ToInt64Milliseconds(options_.measure_window);
    }
    cmd = {{"execute", "guest-ucode-prepare"}, {"arguments", args}};
  } else {
    cmd = {{"execute", "guest-ucode-complete"}, {"arguments", args}};
  }
  return cmd.dump();
}

NotifyResult LibvirtGuestGroup::Notify(const AgentNotice& notice, absl::Duration timeout) {
  auto state = std::make_shared<NotifyState>();
  {
    absl::MutexLock lock(&state->mu);
    state->replies.resize(vms_.size());
    state->done.assign(vms_.size(), false);
    state->blackout.assign(vms_.size(), std::nullopt);
    state->remaining = static_cast<int>(vms_.size());
    for (size_t i = 0; i < vms_.size(); ++i) state->replies[i].vm = domains_[i].name();
  }
  const std::string cmd = AgentCommandJson(notice, timeout);
  const absl::Duration call_timeout = CallTimeout(timeout);
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < vms_.size(); ++i) {
    agent_threads_.emplace_back([state, i, cmd, call_timeout, phase = notice.phase,
                                 &domain = domains_[i]] {
      pthread_setname_np(pthread_self(), absl::StrCat("agent-", domain.name()).substr(0, 15).c_str());
      libvirt::AgentCallResult r = libvirt::CallAgent(domain, cmd, call_timeout);
      AgentReply reply;
      reply.vm = domain.name();
      std::optional<GuestBlackout> blackout;
      if (r.outcome == libvirt::AgentOutcome::kReturned) {
        ReadAnswer(phase, r.reply, reply, blackout);
      } else {
        reply.answered = r.outcome == libvirt::AgentOutcome::kErrorReply;
        reply.status = r.status;
        reply.message = libvirt::AgentOutcomeName(r.outcome);
        if (r.outcome == libvirt::AgentOutcome::kTimeout) {
          reply.status = absl::DeadlineExceededError(r.status.message());
        } else if (r.outcome == libvirt::AgentOutcome::kNoAgent) {
          reply.status = absl::UnavailableError(r.status.message());
        }
      }
      absl::MutexLock lock(&state->mu);
      state->replies[i] = std::move(reply);
      state->blackout[i] = std::move(blackout);
      state->done[i] = true;
      --state->remaining;
    });
  }
  NotifyResult out;
  absl::MutexLock lock(&state->mu);
  auto all_done = [&state]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
    return state->remaining == 0;
  };
  state->mu.AwaitWithDeadline(absl::Condition(&all_done), deadline);
  for (size_t i = 0; i < vms_.size(); ++i) {
    if (state->done[i]) {
      out.replies.push_back(state->replies[i]);
      if (notice.phase == AgentNotice::Phase::kComplete) vms_[i].blackout = state->blackout[i];
      continue;
    }
    AgentReply late;
    late.vm = domains_[i].name();
    late.message = "timeout";
    late.status = absl::DeadlineExceededError(absl::StrCat(
        "guest agent of ", late.vm, " did not answer ", AgentPhaseName(notice.phase), " within ",
        absl::FormatDuration(timeout)));
    out.replies.push_back(std::move(late));
  }
  return out;
}

}  // namespace ucode::orchestrator
