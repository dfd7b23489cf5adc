#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

const char* ViewStatusName(ViewStatus status) {
  switch (status) {
    case ViewStatus::kUnchanged: return "unchanged";
    case ViewStatus::kSet: return "set";
    case ViewStatus::kVerified: return "verified";
    case ViewStatus::kStaleUntilRestart: return "stale until restart";
    case ViewStatus::kFailed: return "failed";
  }
  return "?";
}

const char* AgentPhaseName(AgentNotice::Phase phase) {
  return phase == AgentNotice::Phase::kPrepare ? "prepare" : "complete";
}

}  // namespace ucode::orchestrator
