// Coordinator::RestartExited: a VMM of the fleet that died between operations is replaced
// in its slot of the rendezvous area, so that the next Park() does not fail on it (or on
// its control socket: "sendmsg: Broken pipe").
#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::rendezvous {

absl::StatusOr<std::vector<Coordinator::Restart>> Coordinator::RestartExited(uint32_t revision) {
  std::vector<Restart> out;
  const int64_t deadman_ms = absl::ToInt64Milliseconds(deadman_);
  for (size_t i = 0; i < vmms_.size(); ++i) {
    if (!vmms_[i]->PollExited()) continue;  // reaps it: no zombie stays behind
    Restart r{.index = i,
              .name = vmms_[i]->spec().name,
              .old_pid = vmms_[i]->pid(),
              .how = vmms_[i]->exit_description()};
    // Nothing may kick the dead process's thread ids while the slot is rebuilt; the new
    // vCPU threads publish their own tids and states before ATTACH returns.
    area_->vm[i].pid.store(0, std::memory_order_release);
    VmSpec spec = vmms_[i]->spec();
    spec.initial_revision = revision;
    if (!log_dir_.empty()) {
      r.log_path = absl::StrCat(log_dir_, "/", spec.name, ".restart-", ++restarts_, ".log");
    }
    absl::StatusOr<std::unique_ptr<VmmProcess>> vmm = VmmProcess::Spawn(vmm_path_, spec, r.log_path);
    absl::Status attached =
        vmm.ok() ? (*vmm)->Call(absl::StrCat("ATTACH ", i, " ", deadman_ms), area_fd_.get(),
                                absl::Seconds(30))
                       .status()
                 : vmm.status();
    if (attached.ok() && area_->vm[i].pid.load(std::memory_order_acquire) != (*vmm)->pid()) {
      attached = absl::InternalError("slot not published after ATTACH");
    }
    if (!attached.ok()) {
      return absl::Status(attached.code(),
                          absl::StrCat(r.name, " (pid ", r.old_pid, ") ", r.how,
                                       "; restart failed: ", attached.message()));
    }
    r.new_pid = (*vmm)->pid();
    vmms_[i] = *std::move(vmm);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ucode::rendezvous
