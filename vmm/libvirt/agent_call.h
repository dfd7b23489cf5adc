// One QEMU guest agent command through libvirt (virDomainQemuAgentCommand), classified
// the way an operator needs it: the agent answered, answered with an error, there is no
// agent, or it did not answer in time. A Status alone cannot say this: libvirt reports a
// missing agent and a silent one with the same error code (VIR_ERR_AGENT_UNRESPONSIVE).
#ifndef UCODE_VMM_LIBVIRT_AGENT_CALL_H_
#define UCODE_VMM_LIBVIRT_AGENT_CALL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "vmm/libvirt/domain.h"

namespace ucode::libvirt {

enum class AgentOutcome {
  kReturned,    // {"return": ...}
  kErrorReply,  // the agent answered {"error": {...}}
  kNoAgent,     // no agent channel in the domain, or no agent on the guest side of it
  kTimeout,     // the channel is connected but the agent did not answer in time
  kFailed,      // anything else (domain not running, connection lost, ...)
};
// "returned", "error-reply", "no-agent", "timeout", "failed".
const char* AgentOutcomeName(AgentOutcome outcome);

struct AgentCallResult {
  AgentOutcome outcome = AgentOutcome::kFailed;
  std::string reply;     // kReturned: the whole reply text, {"return": ...}
  absl::Status status;   // OK iff kReturned; otherwise libvirt's error, with its words
  absl::Duration elapsed;
};

// Runs `json` on the domain's agent with libvirt's timeout of whole seconds
// (ceil(timeout), at least 1 s). libvirt first synchronises with the agent (guest-sync,
// bounded by the same timeout) unless it already did on this agent connection, so a
// silent agent costs up to about twice the rounded timeout. Thread-safe; classifies from
// this thread's libvirt last error, so it calls nothing else in between.
AgentCallResult CallAgent(const Domain& domain, absl::string_view json, absl::Duration timeout);

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_AGENT_CALL_H_
