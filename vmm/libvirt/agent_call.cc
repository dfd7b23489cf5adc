#include "vmm/libvirt/agent_call.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {
namespace {

int WholeSeconds(absl::Duration timeout) {
  const double s = std::ceil(absl::ToDoubleSeconds(timeout));
  return static_cast<int>(std::clamp(s, 1.0, 3600.0));
}

// From libvirt 9.0's src/qemu: qemuDomainAgentAvailable reports "QEMU guest agent is not
// configured" (VIR_ERR_ARGUMENT_UNSUPPORTED) when the domain has no agent channel and
// "... is not connected" (VIR_ERR_AGENT_UNRESPONSIVE) when nobody opened the guest end;
// qemuAgentSend reports "Guest agent not available for now" (same code) on a timeout;
// qemuAgentCheckError reports an {"error"} reply as VIR_ERR_INTERNAL_ERROR "unable to
// execute QEMU agent command '...'". The code alone cannot tell the first two apart.
AgentOutcome Classify(const virError* err) {
  if (err == nullptr) return AgentOutcome::kFailed;
  const absl::string_view msg = err->message != nullptr ? err->message : "";
  switch (err->code) {
    case VIR_ERR_ARGUMENT_UNSUPPORTED:
      return AgentOutcome::kNoAgent;
    case VIR_ERR_AGENT_UNRESPONSIVE:
      return absl::StrContains(msg, "not connected") ? AgentOutcome::kNoAgent
                                                      : AgentOutcome::kTimeout;
    case VIR_ERR_OPERATION_TIMEOUT:
      return AgentOutcome::kTimeout;
    case VIR_ERR_INTERNAL_ERROR:
      return absl::StrContains(msg, "unable to execute QEMU agent command")
                 ? AgentOutcome::kErrorReply
                 : AgentOutcome::kFailed;
    default:
      return AgentOutcome::kFailed;
  }
}

}  // namespace

const char* AgentOutcomeName(AgentOutcome outcome) {
  switch (outcome) {
    case AgentOutcome::kReturned: return "returned";
    case AgentOutcome::kErrorReply: return "error-reply";
    case AgentOutcome::kNoAgent: return "no-agent";
    case AgentOutcome::kTimeout: return "timeout";
    case AgentOutcome::kFailed: return "failed";
  }
  return "?";
}

AgentCallResult CallAgent(const Domain& domain, absl::string_view json, absl::Duration timeout) {
  SilenceDefaultErrorHandler();
  const std::string cmd(json);
  AgentCallResult r;
  const absl::Time start = absl::Now();
  char* reply = virDomainQemuAgentCommand(domain.get(), cmd.c_str(), WholeSeconds(timeout), 0);
  r.elapsed = absl::Now() - start;
  if (reply != nullptr) {
    r.outcome = AgentOutcome::kReturned;
    r.reply = reply;
    free(reply);
    return r;
  }
  r.outcome = Classify(virGetLastError());
  r.status = LastErrorStatus(absl::StrCat("agent of ", domain.name()));
  return r;
}

}  // namespace ucode::libvirt
