// Fan out, then fan in, with a deadline (STYLE.md): one named thread per item, all started
// before any is waited for, every one joined before FanOut returns. The deadline is taken
// once, before the first thread starts, so every participant works to the same instant
// and each reports its own outcome through `run`.
//
// Used for the orchestrator's per-group steps (guest_group.h) and libvirt's per-domain
// suspend/resume (vmm/libvirt/fan_out.cc). Not for work that may outlive the caller's
// wait (agent notifications keep their threads until the group is destroyed).
#ifndef UCODE_VMM_ORCHESTRATOR_FAN_OUT_H_
#define UCODE_VMM_ORCHESTRATOR_FAN_OUT_H_

#include <cstddef>
#include <functional>
#include <string>

#include "absl/time/time.h"

namespace ucode::orchestrator {

struct FanOutItem {
  size_t index = 0;
  absl::Time deadline;  // now + timeout, the same for every item
};

// Runs run({i, deadline}) for i in [0, count). A single item runs inline on the caller's
// thread (no thread hop on the common path, and the caller's thread keeps its name);
// otherwise item i runs on a thread named thread_name(i), cut to the 15 bytes Linux keeps
// (pthread_setname_np(3)).
void FanOut(size_t count, absl::Duration timeout,
            const std::function<std::string(size_t)>& thread_name,
            const std::function<void(const FanOutItem&)>& run);

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_FAN_OUT_H_
