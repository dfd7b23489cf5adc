// The rendezvous protocol over the shared area (see area.h and coordinator.h).
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::rendezvous {
namespace {

// A kick is a signal; it cannot be lost once delivered, but a vCPU thread that was
// between its command check and KVM_RUN when the command changed is covered by
// immediate_exit, so re-kicks only matter for pathological scheduling.
constexpr absl::Duration kRekick = absl::Milliseconds(2);
constexpr int kParkSignal = SIGUSR1;  // must match vmm/kvm/vcpu_thread.h

bool IsState(const VcpuSlot& s, VcpuState st) {
  return s.state.load(std::memory_order_acquire) == static_cast<uint32_t>(st);
}

// Runs the coordinator's thread at kCoordinatorRtPriority for a scope, then restores it.
// A no-op while the thread already runs a real-time policy (e.g. held from Park()).
class RealtimeScope {
 public:
  RealtimeScope() {
    policy_ = sched_getscheduler(0);
    sched_getparam(0, &param_);
    if (policy_ != SCHED_FIFO && policy_ != SCHED_RR) {
      raised_ = SetRealtime(0, kCoordinatorRtPriority);
    }
  }
  ~RealtimeScope() {
    if (raised_) sched_setscheduler(0, policy_, &param_);
  }

 private:
  int policy_;
  sched_param param_;
  bool raised_ = false;
};

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

}  // namespace

// The thread that parks keeps kCoordinatorRtPriority until a release has let every vCPU
// go: dropping back to SCHED_OTHER between steps lets the scheduler run ordinary tasks
// (every other runnable thread of the host) before the next step while vCPUs are held.
void Coordinator::HoldRealtime() {
  if (held_rt_.tid != 0) return;
  held_rt_.tid = Gettid();
  held_rt_.policy = sched_getscheduler(0);
  sched_getparam(0, &held_rt_.param);
  held_rt_.raised = held_rt_.policy != SCHED_FIFO && held_rt_.policy != SCHED_RR &&
                    SetRealtime(0, kCoordinatorRtPriority);
}

void Coordinator::DropRealtime() {
  // May run on another thread than HoldRealtime (the orchestrator fans steps out to
  // threads), hence the tid.
  if (held_rt_.raised) sched_setscheduler(held_rt_.tid, held_rt_.policy, &held_rt_.param);
  held_rt_ = {};
}

uint32_t Coordinator::Issue(Command command, uint32_t expected_acks) {
  uint32_t seq = ++seq_;
  area_->acks.store(0, std::memory_order_relaxed);
  area_->arrived.store(0, std::memory_order_relaxed);
  area_->expected_acks.store(expected_acks, std::memory_order_relaxed);
  for (size_t i = 0; i < vmms_.size(); ++i) area_->vm[i].acks.store(0);
  int64_t now = MonotonicNs();
  area_->command_ns.store(now, std::memory_order_relaxed);
  area_->command.store(MakeCommandWord(seq, command), std::memory_order_release);
  if (command == Command::kPark) {
    park_ns_ = now;
  } else {
    if (command == Command::kRelease || command == Command::kReleaseWithRevision) {
      release_ns_ = now;
    }
    FutexWakeAll(&area_->command);  // every parked vCPU thread of every VM sleeps here
  }
  return seq;
}

void Coordinator::KickUnparked(uint32_t seq) {
  for (size_t i = 0; i < vmms_.size(); ++i) {
    const VmSlot& vm = area_->vm[i];
    for (uint32_t j = 0; j < vm.vcpus; ++j) {
      const VcpuSlot& s = vm.vcpu[j];
      if (s.ack_seq.load(std::memory_order_acquire) == seq) continue;
      syscall(SYS_tgkill, vmms_[i]->pid(), s.tid, kParkSignal);
    }
  }
}

std::vector<std::string> Coordinator::WaitAll(uint32_t seq, absl::Duration deadline,
                                              bool rekick) {
  int64_t end = MonotonicNs() + absl::ToInt64Nanoseconds(deadline);
  int64_t next_kick = MonotonicNs() + absl::ToInt64Nanoseconds(kRekick);
  // Runs at real-time priority on a core the vCPUs need: the loop only counts; names are
  // built once, on failure.
  auto pending = [&](size_t i, uint32_t j) {
    return area_->vm[i].vcpu[j].ack_seq.load(std::memory_order_acquire) != seq;
  };
  auto dead = [&](size_t i, uint32_t j) {
    return IsState(area_->vm[i].vcpu[j], VcpuState::kExited) || vmms_[i]->exited();
  };
  for (;;) {
    uint32_t acks = area_->acks.load(std::memory_order_acquire);
    int missing = 0;
    bool exited = false;
    for (size_t i = 0; i < vmms_.size(); ++i) {
      for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
        if (!pending(i, j)) continue;
        ++missing;
        exited |= dead(i, j);
      }
    }
    int64_t now = MonotonicNs();
    if (missing == 0) return {};
    if (exited || now >= end) {
      std::vector<std::string> names;
      for (size_t i = 0; i < vmms_.size(); ++i) {
        for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
          if (!pending(i, j)) continue;
          names.push_back(
              absl::StrCat(vmms_[i]->spec().name, " vcpu ", j, dead(i, j) ? " (exited)" : ""));
        }
      }
      return names;
    }
    if (rekick && now >= next_kick) {
      KickUnparked(seq);
      next_kick = now + absl::ToInt64Nanoseconds(kRekick);
    }
    int64_t wait = std::min(end, rekick ? next_kick : end) - now;
    FutexWait(&area_->acks, acks, absl::Nanoseconds(wait));
  }
}

absl::Status Coordinator::Park(absl::Duration deadline) {
  HoldRealtime();  // until a release: see HoldRealtime()
  uint32_t seq = Issue(Command::kPark, total_vcpus_);
  park_seq_ = seq;
  // Fan out: one signal per vCPU thread, straight into each VMM process, then raise each
  // to real-time so that a thread waiting for a core runs (and sees the signal) now.
  KickUnparked(seq);
  for (size_t i = 0; i < vmms_.size(); ++i) {
    for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
      SetRealtime(area_->vm[i].vcpu[j].tid, kVcpuRtPriority);
    }
  }
  std::vector<std::string> missing = WaitAll(seq, deadline, /*rekick=*/true);
  if (missing.empty()) return absl::OkStatus();
  absl::Status released = Release(absl::Milliseconds(500));
  // Parked vCPUs dropped their priority on release; the ones that never parked did not.
  for (size_t i = 0; i < vmms_.size(); ++i) {
    for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
      if (area_->vm[i].vcpu[j].ack_seq.load() != seq) SetRealtime(area_->vm[i].vcpu[j].tid, 0);
    }
  }
  return absl::AbortedError(absl::StrCat(
      "park: ", total_vcpus_ - static_cast<int>(missing.size()), "/", total_vcpus_,
      " vCPUs parked within ", absl::FormatDuration(deadline), "; not parked: ",
      absl::StrJoin(missing, ", "), "; released all",
      released.ok() ? "" : absl::StrCat(" (", released.message(), ")")));
}

absl::Status Coordinator::Release(absl::Duration deadline) {
  return ReleaseWith(Command::kRelease, deadline);
}

// One wake-up per vCPU: the revision rides on the release command, and each vCPU thread
// writes and reads back MSR 0x8B before it re-enters KVM_RUN (VcpuThread::SetGuestView
// says why that keeps every guest's view consistent). The verdict is read from the slots
// afterwards; every vCPU has been let go whatever it is.
absl::Status Coordinator::ReleaseWithRevision(uint32_t revision, absl::Duration deadline) {
  const uint64_t msr = uint64_t{revision} << 32;
  area_->revision.store(msr, std::memory_order_relaxed);  // published by Issue()'s store
  absl::Status released = ReleaseWith(Command::kReleaseWithRevision, deadline);
  view_release_seq_ = seq_;  // the release command just issued
  view_park_seq_ = park_seq_;
  std::vector<std::string> bad;
  for (size_t i = 0; i < vmms_.size(); ++i) {
    for (const VcpuViewMiss& v : ViewNotSet(i, msr)) {
      bad.push_back(absl::StrCat(vmms_[i]->spec().name, " ", v.Describe()));
    }
  }
  if (bad.empty()) return released;
  std::string views = absl::StrCat("MSR 0x8B=0x", absl::Hex(msr), " with the release: ",
                                   absl::StrJoin(bad, ", "));
  if (!released.ok()) {  // the release's own failure keeps its code
    return absl::Status(released.code(), absl::StrCat(released.message(), "; ", views));
  }
  return absl::InternalError(absl::StrCat(views, "; every vCPU released"));
}

std::string VcpuViewMiss::Describe() const {
  switch (why) {
    case ViewMiss::kDeadmanReleased:
      return absl::StrCat("vcpu ", vcpu, " did not take the release (dead-man released it)");
    case ViewMiss::kNoAck:
      return absl::StrCat("vcpu ", vcpu, " did not take the release (no ack)");
    case ViewMiss::kReadBack:
      return absl::StrCat("vcpu ", vcpu, " read back 0x", absl::Hex(readback));
  }
  return absl::StrCat("vcpu ", vcpu, " ?");
}

std::vector<VcpuViewMiss> Coordinator::ViewNotSet(size_t vm, uint64_t msr) const {
  std::vector<VcpuViewMiss> bad;
  const VmSlot& slot = area_->vm[vm];
  for (uint32_t j = 0; j < slot.vcpus; ++j) {
    const VcpuSlot& v = slot.vcpu[j];
    // The slot's read-back belongs to this release only if the vCPU acknowledged it. One
    // that did not was released by its dead-man only if it left this release's park that
    // way: deadman_releases also counts earlier rendezvous.
    if (v.ack_seq.load(std::memory_order_acquire) != view_release_seq_) {
      const bool deadman = view_park_seq_ != 0 &&  // seqs start at 1
                           v.deadman_seq.load(std::memory_order_acquire) == view_park_seq_;
      bad.push_back({.vcpu = j, .why = deadman ? ViewMiss::kDeadmanReleased : ViewMiss::kNoAck});
    } else if (v.last_errno != 0 || v.revision_readback != msr) {
      bad.push_back({.vcpu = j, .why = ViewMiss::kReadBack, .readback = v.revision_readback});
    }
  }
  return bad;
}

absl::Status Coordinator::ReleaseWith(Command command, absl::Duration deadline) {
  RealtimeScope rt;
  uint32_t parked = 0;
  for (size_t i = 0; i < vmms_.size(); ++i) {
    for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
      parked += IsState(area_->vm[i].vcpu[j], VcpuState::kParked);
    }
  }
  uint32_t seq = Issue(command, parked);
  absl::Status s = WaitReleased(seq, deadline);
  // What the vCPUs recorded, not when this thread noticed: the last vCPU's resumed_ns
  // (taken just before it re-entered KVM_RUN) minus the release command.
  int64_t last_back = 0;
  for (size_t i = 0; i < vmms_.size(); ++i) {
    for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
      const VcpuSlot& v = area_->vm[i].vcpu[j];
      if (v.ack_seq.load(std::memory_order_acquire) == seq) {
        last_back = std::max(last_back, v.resumed_ns);
      }
    }
  }
  release_all_ = last_back > release_ns_ ? absl::Nanoseconds(last_back - release_ns_)
                                         : absl::ZeroDuration();
  DropRealtime();
  return s;
}

absl::Status Coordinator::WaitReleased(uint32_t seq, absl::Duration deadline) {
  auto still_parked = [&](size_t i, uint32_t j) {
    const VcpuSlot& s = area_->vm[i].vcpu[j];
    return IsState(s, VcpuState::kParked) &&
           s.ack_seq.load(std::memory_order_acquire) != seq && !vmms_[i]->exited();
  };
  int64_t end = MonotonicNs() + absl::ToInt64Nanoseconds(deadline);
  for (;;) {
    uint32_t acks = area_->acks.load(std::memory_order_acquire);
    int still = 0;
    for (size_t i = 0; i < vmms_.size(); ++i) {
      for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) still += still_parked(i, j);
    }
    int64_t now = MonotonicNs();
    if (still == 0) return absl::OkStatus();
    if (now >= end) {
      std::vector<std::string> names;
      for (size_t i = 0; i < vmms_.size(); ++i) {
        for (uint32_t j = 0; j < area_->vm[i].vcpus; ++j) {
          if (still_parked(i, j)) names.push_back(absl::StrCat(vmms_[i]->spec().name, " vcpu ", j));
        }
      }
      return absl::DeadlineExceededError(
          absl::StrCat("release: still parked: ", absl::StrJoin(names, ", "),
                       " (their dead-man deadline will release them)"));
    }
    FutexWait(&area_->acks, acks, absl::Nanoseconds(end - now));
  }
}

absl::Status Coordinator::WaitGuests(absl::Duration timeout, absl::string_view what,
                                      const std::function<bool(const VcpuView&)>& ran) {
  int64_t end = MonotonicNs() + absl::ToInt64Nanoseconds(timeout);
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<VmResult> views, ReadGuestViews());
    std::vector<std::string> idle;
    for (size_t i = 0; i < views.size(); ++i) {
      if (vmms_[i]->spec().program == "halt") continue;
      for (const VcpuView& v : views[i].vcpus) {
        if (!ran(v)) idle.push_back(absl::StrCat(views[i].name, " vcpu ", v.index));
      }
    }
    if (idle.empty()) return absl::OkStatus();
    if (MonotonicNs() >= end) {
      return absl::DeadlineExceededError(absl::StrCat(
          what, " after ", absl::FormatDuration(timeout), ": ", absl::StrJoin(idle, ", ")));
    }
    usleep(1000);
  }
}

absl::Status Coordinator::WaitGuestsRunning(absl::Duration timeout) {
  return WaitGuests(timeout, "guests not running",
                    [](const VcpuView& v) { return v.iterations > 0; });
}

// The guest keeps the gap that spans a park at its first TSC read after it, then counts
// that iteration (vmm/guest/spin.S); one iteration more covers a park that landed between
// a read and the park-mark check.
absl::Status Coordinator::WaitGuestsRanAfterPark(absl::Duration timeout) {
  return WaitGuests(timeout, "guests not running again after the park",
                    [](const VcpuView& v) { return v.iterations > v.parked_iteration + 1; });
}

}  // namespace ucode::rendezvous
