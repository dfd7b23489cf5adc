#include "vmm/orchestrator/libvirt_group.h"

#include <libvirt/libvirt.h>
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

// The agent's {"return": ...} for prepare/complete as an AgentReply verdict.
void ReadAnswer(AgentNotice::Phase phase, const std::string& text, AgentReply& out) {
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
}

}  // namespace

struct LibvirtGuestGroup::NotifyState {
  absl::Mutex mu;
  std::vector<AgentReply> replies ABSL_GUARDED_BY(mu);
  std::vector<bool> done ABSL_GUARDED_BY(mu);
  int remaining ABSL_GUARDED_BY(mu) = 0;
};

absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> LibvirtGuestGroup::Create(
    const libvirt::Connection& conn, std::vector<libvirt::Domain> domains,
    LibvirtGroupOptions options) {
  if (options.host.empty()) options.host = Hostname();
  std::unique_ptr<LibvirtGuestGroup> g(new LibvirtGuestGroup(conn, std::move(options)));
  for (libvirt::Domain& d : domains) {
    ASSIGN_OR_RETURN(int vcpus, d.VcpuCount());
    Vm vm{.domain = std::move(d), .vcpus = vcpus};
    vm.view.name = vm.domain.name();
    g->vms_.push_back(std::move(vm));
  }
  return g;
}

LibvirtGuestGroup::~LibvirtGuestGroup() {
  for (std::thread& t : agent_threads_) t.join();
}

std::vector<std::string> LibvirtGuestGroup::names() const {
  std::vector<std::string> out;
  for (const Vm& vm : vms_) out.push_back(vm.domain.name());
  return out;
}

int LibvirtGuestGroup::total_vcpus() const {
  int n = 0;
  for (const Vm& vm : vms_) n += vm.vcpus;
  return n;
}

absl::Status LibvirtGuestGroup::Prepare(absl::Duration /*timeout*/) {
  std::vector<std::string> bad;
  for (const Vm& vm : vms_) {
    absl::StatusOr<int> state = vm.domain.State();
    if (!state.ok()) {
      bad.push_back(std::string(state.status().message()));
    } else if (*state != VIR_DOMAIN_RUNNING && *state != VIR_DOMAIN_PAUSED) {
      bad.push_back(absl::StrCat(vm.domain.name(), " is neither running nor paused (state ",
                                 *state, ")"));
    }
  }
  if (bad.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("libvirt: ", absl::StrJoin(bad, "; ")));
}

absl::Status LibvirtGuestGroup::Park(absl::Duration deadline) {
  std::vector<libvirt::Domain> doms;
  for (Vm& vm : vms_) {
    vm.parked_by_us = vm.paused_by_other = false;
    vm.parked_at = vm.released_at = vm.release_start = absl::InfinitePast();
    ASSIGN_OR_RETURN(libvirt::Domain d, vm.domain.Duplicate());
    doms.push_back(std::move(d));
  }
  const absl::Time start = absl::Now();
  std::vector<libvirt::DomainOpResult> results = conn_.SuspendAll(doms, deadline);
  std::vector<std::string> failed;
  for (size_t i = 0; i < vms_.size(); ++i) {
    Vm& vm = vms_[i];
    const libvirt::DomainOpResult& r = results[i];
    vm.park_start = start;
    if (r.already_in_state) {
      vm.paused_by_other = true;
      continue;
    }
    // A failed suspend may still have paused the domain (a missing ack): resume it too.
    vm.parked_by_us = true;
    vm.parked_at = start + (r.ack_latency > absl::ZeroDuration() ? r.ack_latency : r.call_latency);
    if (!r.status.ok()) failed.push_back(absl::StrCat(vm.domain.name(), ": ", r.status.message()));
  }
  if (failed.empty()) return absl::OkStatus();
  std::vector<std::string> not_resumed = ResumeOurs(deadline);
  std::string msg = absl::StrCat("libvirt: ", failed.size(), " of ", vms_.size(),
                                 " domains did not park (", absl::StrJoin(failed, "; "),
                                 "); resumed the ones this operation suspended");
  if (!not_resumed.empty()) {
    absl::StrAppend(&msg, "; RESUME FAILED for ", absl::StrJoin(not_resumed, "; "));
  }
  return absl::AbortedError(msg);
}

std::vector<std::string> LibvirtGuestGroup::ResumeOurs(absl::Duration deadline) {
  std::vector<libvirt::Domain> doms;
  std::vector<Vm*> which;
  std::vector<std::string> failed;
  for (Vm& vm : vms_) {
    if (!vm.parked_by_us) continue;
    absl::StatusOr<libvirt::Domain> d = vm.domain.Duplicate();
    if (!d.ok()) {
      failed.push_back(absl::StrCat(vm.domain.name(), ": ", d.status().message()));
      continue;
    }
    doms.push_back(std::move(*d));
    which.push_back(&vm);
  }
  if (doms.empty()) return failed;
  const absl::Time start = absl::Now();
  std::vector<libvirt::DomainOpResult> results = conn_.ResumeAll(doms, deadline);
  for (size_t i = 0; i < which.size(); ++i) {
    Vm& vm = *which[i];
    const libvirt::DomainOpResult& r = results[i];
    vm.release_start = start;
    if (!r.status.ok()) {
      failed.push_back(absl::StrCat(vm.domain.name(), ": ", r.status.message()));
      continue;
    }
    vm.parked_by_us = false;
    vm.released_at = start + (r.ack_latency > absl::ZeroDuration() ? r.ack_latency : r.call_latency);
  }
  return failed;
}

absl::Status LibvirtGuestGroup::Release(absl::Duration deadline) {
  std::vector<std::string> failed = ResumeOurs(deadline);
  if (failed.empty()) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("libvirt: resume failed for ", absl::StrJoin(failed, "; ")));
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
  std::vector<VmReport> out;
  for (const Vm& vm : vms_) {
    VmReport r;
    r.kind = kind();
    r.name = vm.domain.name();
    r.vcpus = vm.vcpus;
    if (vm.parked_at != absl::InfinitePast()) r.park_latency = vm.parked_at - vm.park_start;
    if (vm.parked_at != absl::InfinitePast() && vm.released_at != absl::InfinitePast()) {
      r.time_parked = vm.released_at - vm.parked_at;
    }
    r.guest_measured = false;
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
    state->remaining = static_cast<int>(vms_.size());
    for (size_t i = 0; i < vms_.size(); ++i) state->replies[i].vm = vms_[i].domain.name();
  }
  const std::string cmd = AgentCommandJson(notice, timeout);
  const absl::Duration call_timeout = CallTimeout(timeout);
  const absl::Time deadline = absl::Now() + timeout;
  for (size_t i = 0; i < vms_.size(); ++i) {
    agent_threads_.emplace_back([state, i, cmd, call_timeout, phase = notice.phase,
                                 &domain = vms_[i].domain] {
      pthread_setname_np(pthread_self(), absl::StrCat("agent-", domain.name()).substr(0, 15).c_str());
      libvirt::AgentCallResult r = libvirt::CallAgent(domain, cmd, call_timeout);
      AgentReply reply;
      reply.vm = domain.name();
      if (r.outcome == libvirt::AgentOutcome::kReturned) {
        ReadAnswer(phase, r.reply, reply);
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
      continue;
    }
    AgentReply late;
    late.vm = vms_[i].domain.name();
    late.message = "timeout";
    late.status = absl::DeadlineExceededError(absl::StrCat(
        "guest agent of ", late.vm, " did not answer ", AgentPhaseName(notice.phase), " within ",
        absl::FormatDuration(timeout)));
    out.replies.push_back(std::move(late));
  }
  return out;
}

}  // namespace ucode::orchestrator
