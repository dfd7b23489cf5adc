#include "vmm/kvm/vcpu_thread.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "vmm/guest/guest_record.h"

namespace ucode::vmm {
namespace {

using rendezvous::Command;
using rendezvous::CommandOf;
using rendezvous::MonotonicNs;
using rendezvous::SeqOf;
using rendezvous::VcpuState;

// The kvm_run page of the vCPU owned by this thread (null on other threads).
thread_local kvm_run* tls_run = nullptr;

void OnParkSignal(int) {
  kvm_run* run = tls_run;
  if (run != nullptr) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_RELEASE);
}

void SetImmediateExit(kvm_run* run, uint8_t v) {
  __atomic_store_n(&run->immediate_exit, v, __ATOMIC_SEQ_CST);
}

std::string RegsDump(int fd) {
  kvm_regs r;
  kvm_sregs s;
  if (ioctl(fd, KVM_GET_REGS, &r) < 0 || ioctl(fd, KVM_GET_SREGS, &s) < 0) {
    return "(registers unavailable)";
  }
  return absl::StrFormat(
      "rip=0x%x rsp=0x%x rflags=0x%x rax=0x%x rcx=0x%x rdx=0x%x rdi=0x%x cr0=0x%x "
      "cr3=0x%x cr4=0x%x efer=0x%x",
      r.rip, r.rsp, r.rflags, r.rax, r.rcx, r.rdx, r.rdi, s.cr0, s.cr3, s.cr4, s.efer);
}

}  // namespace

absl::Status InstallParkSignalHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnParkSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return -EINTR
  if (sigaction(kParkSignal, &sa, nullptr) < 0) return ErrnoStatus(errno, "sigaction");
  return absl::OkStatus();
}

VcpuThread::VcpuThread(VcpuFd vcpu, VcpuEnv env)
    : vcpu_(std::move(vcpu)), env_(std::move(env)), slot_(&env_.vm->vcpu[vcpu_.index]) {}

VcpuThread::~VcpuThread() {
  RequestStop();
  if (thread_.joinable()) thread_.join();
}

void VcpuThread::Start() {
  thread_ = std::thread([this] { Main(); });
  started_.WaitForNotification();
}

void VcpuThread::RequestStop() {
  stop_.store(true, std::memory_order_release);
  if (!thread_.joinable()) return;
  Kick();
  rendezvous::FutexWakeAll(&env_.area->command);
}

void VcpuThread::Kick() const {
  pid_t tid = tid_.load();
  if (tid > 0) syscall(SYS_tgkill, getpid(), tid, kParkSignal);
}

void VcpuThread::Log(const std::string& msg) const {
  std::fprintf(stderr, "[ucode-vmm %s vcpu %d] %s\n", env_.vm_name.c_str(), vcpu_.index,
               msg.c_str());
}

void VcpuThread::Main() {
  std::string name = absl::StrCat("vcpu-", env_.vm_name, "-", vcpu_.index).substr(0, 15);
  pthread_setname_np(pthread_self(), name.c_str());
  tls_run = vcpu_.run();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kParkSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  // Commands issued before we started are not ours to act on.
  handled_seq_ = SeqOf(env_.area->command.load(std::memory_order_acquire));
  pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
  slot_->tid = tid;
  tid_.store(tid);
  slot_->state.store(static_cast<uint32_t>(VcpuState::kRunning), std::memory_order_release);
  started_.Notify();

  Next next = Next::kRunning;
  while (next != Next::kExiting) {
    next = next == Next::kRunning ? Running() : Parked();
  }
  if (slot_->state.load() != static_cast<uint32_t>(VcpuState::kExited)) {
    slot_->state.store(static_cast<uint32_t>(VcpuState::kExited), std::memory_order_release);
  }
  tls_run = nullptr;
}

VcpuThread::Next VcpuThread::Running() {
  kvm_run* run = vcpu_.run();
  for (;;) {
    // Clear first, then look at the command: a kick whose handler ran before the clear
    // was sent after its command was written, so the load below sees that command.
    SetImmediateExit(run, 0);
    if (stop_.load(std::memory_order_acquire)) return Next::kExiting;
    uint32_t word = env_.area->command.load(std::memory_order_acquire);
    if (SeqOf(word) != handled_seq_) {
      handled_seq_ = SeqOf(word);
      if (CommandOf(word) == Command::kPark && !env_.refuse_park) return Park(handled_seq_);
      // A release reaching a running vCPU (it released itself through the dead-man) is
      // not applied: the coordinator sees no ack and reports this vCPU's view as not set.
    }
    if (ioctl(vcpu_.fd.get(), KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        exit_to_complete_ = false;
        continue;
      }
      Fail(absl::StrCat("KVM_RUN: ", std::strerror(errno)));
      return Next::kExiting;
    }
    exit_to_complete_ = true;
    if (!HandleExit()) return Next::kExiting;
  }
}

VcpuThread::Next VcpuThread::Park(uint32_t seq) {
  kvm_run* run = vcpu_.run();
  slot_->kicked_out_ns = MonotonicNs();
  // KVM API document (5., immediate_exit): re-enter once so that KVM completes a pending
  // I/O or MMIO exit (complete_userspace_io) without running guest code. Only an exit to
  // user space leaves one: kvm_arch_vcpu_ioctl_run() runs complete_userspace_io before it
  // looks at immediate_exit or signals, so after a KVM_RUN that returned -EINTR (the kick
  // caught the vCPU in guest mode, the common case) there is nothing to complete and the
  // extra round trip into KVM is skipped.
  if (exit_to_complete_) {
    SetImmediateExit(run, 1);
    exit_to_complete_ = ioctl(vcpu_.fd.get(), KVM_RUN, 0) == 0;  // completing made another
    if (exit_to_complete_ && !HandleExit()) return Next::kExiting;
  }
  // Tell the guest's kvmclock it was paused (KVM API document 4.70); EINVAL means the
  // guest has not set up kvmclock, which our guests never do.
  if (ioctl(vcpu_.fd.get(), KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL) {
    Log(absl::StrCat("KVM_KVMCLOCK_CTRL: ", std::strerror(errno)));
  }
  // The guest is out of guest mode, so its record is ours to touch: close its gap window
  // (keep the window's largest gap as the baseline of this hold, open the next one) and
  // start a fresh blackout measurement (the guest's next TSC gap spans this park).
  uint8_t* rec = env_.guest_memory + GUEST_RECORD_BASE + vcpu_.index * GUEST_RECORD_SIZE;
  std::memcpy(rec + REC_WINDOW_GAP_AT_PARK, rec + REC_MAX_GAP, sizeof(uint64_t));
  std::memset(rec + REC_MAX_GAP, 0, 16);  // REC_MAX_GAP, REC_MAX_GAP_AT
  const uint64_t mark[2] = {1, 0};        // REC_PARK_MARK, REC_PARK_GAP
  std::memcpy(rec + REC_PARK_MARK, mark, sizeof(mark));
  std::memcpy(&slot_->parked_iteration, rec + REC_ITERATIONS, sizeof(uint64_t));
  slot_->parked_ns = MonotonicNs();
  slot_->state.store(static_cast<uint32_t>(VcpuState::kParked), std::memory_order_release);
  rendezvous::Acknowledge(env_.area, env_.vm, slot_, seq);
  return Next::kParked;
}

VcpuThread::Next VcpuThread::Parked() {
  for (;;) {
    uint32_t word = env_.area->command.load(std::memory_order_acquire);
    if (SeqOf(word) != handled_seq_) {
      handled_seq_ = SeqOf(word);
      switch (CommandOf(word)) {
        case Command::kReleaseWithRevision:
          SetGuestView();
          ReleaseBarrier();
          return Resume(handled_seq_, /*ack=*/true);
        case Command::kRelease:
          ReleaseBarrier();
          return Resume(handled_seq_, /*ack=*/true);
        default:  // a repeated park: we are parked already
          rendezvous::Acknowledge(env_.area, env_.vm, slot_, handled_seq_);
          continue;
      }
    }
    if (stop_.load(std::memory_order_acquire)) return Next::kExiting;
    absl::Duration parked = absl::Nanoseconds(MonotonicNs() - slot_->parked_ns);
    bool gone = env_.coordinator_gone->load(std::memory_order_acquire);
    if (gone || parked >= env_.deadman) {
      // The dead-man rule: a parked VM is never left parked (ARCHITECTURE.md 3.3).
      Log(absl::StrCat("dead-man: releasing myself after ", absl::FormatDuration(parked),
                       " parked (", gone ? "coordinator gone" : "deadline ",
                       gone ? "" : absl::FormatDuration(env_.deadman), ")"));
      slot_->deadman_seq.store(handled_seq_, std::memory_order_release);  // the park we leave
      slot_->deadman_releases.fetch_add(1);
      return Resume(0, /*ack=*/false);
    }
    rendezvous::FutexWait(&env_.area->command, word, env_.deadman - parked);
  }
}

// The new guest view travels with the release: MSR 0x8B is written and read back here,
// on the vCPU's own thread, before this vCPU re-enters KVM_RUN. That ordering is what
// keeps the guarantee "no vCPU runs with the old view after any vCPU has run with the new
// one": every vCPU has been parked since before the release command was issued, and the
// only way from parked to KVM_RUN under that command passes through this write. So a
// vCPU either has not run since the park, or runs with the new view. The exceptions are
// the failures the coordinator reports and never hides: a write or read-back that fails
// here (last_errno, revision_readback), and a vCPU that released itself through the
// dead-man before the command (it never acknowledges it). A failed vCPU is released all
// the same: no VM is left parked.
void VcpuThread::SetGuestView() {
  const uint64_t rev = env_.area->revision.load(std::memory_order_acquire);
  absl::Status s = env_.stale_view ? absl::OkStatus()  // test hook: the write is lost
                                   : SetMsr(vcpu_.fd.get(), kMsrIa32UcodeRev, rev);
  absl::StatusOr<uint64_t> back = GetMsr(vcpu_.fd.get(), kMsrIa32UcodeRev);
  slot_->revision_readback = back.ok() ? *back : 0;
  slot_->last_errno = s.ok() && back.ok() && *back == rev ? 0 : -1;
  if (slot_->last_errno != 0) {
    Log(absl::StrFormat("set revision 0x%x failed: %s; read back %s", rev, s.ToString(),
                        back.ok() ? absl::StrFormat("0x%x", *back) : back.status().ToString()));
  }
}

// On a host with fewer cores than vCPUs, the first threads woken by the release would
// enter the guest and keep the cores until the scheduler preempts them, so the last
// vCPU would re-enter KVM_RUN a scheduler slice or more later. Instead every released
// thread yields until all released vCPUs (of every VM) are awake, so they re-enter
// KVM_RUN together; a thread that is not scheduled cannot hold the others longer than
// kReleaseBarrierLimitNs. After that the vCPUs share the cores as they did before the park.
void VcpuThread::ReleaseBarrier() {
  constexpr int64_t kReleaseBarrierLimitNs = 1'000'000;
  rendezvous::Area* a = env_.area;
  uint32_t expected = a->expected_acks.load(std::memory_order_acquire);
  a->arrived.fetch_add(1, std::memory_order_acq_rel);
  int64_t until = MonotonicNs() + kReleaseBarrierLimitNs;
  while (a->arrived.load(std::memory_order_acquire) < expected && MonotonicNs() < until) {
    sched_yield();
  }
}

VcpuThread::Next VcpuThread::Resume(uint32_t seq, bool ack) {
  slot_->resumed_ns = MonotonicNs();
  slot_->state.store(static_cast<uint32_t>(VcpuState::kRunning), std::memory_order_release);
  if (ack) rendezvous::Acknowledge(env_.area, env_.vm, slot_, seq);
  // The kick raised us to SCHED_FIFO (area.h); guest code runs at ordinary priority.
  // From here the vCPU waits for a core like any task: on an overcommitted host that
  // wait is the host's overcommit, which the guest saw before the park as well.
  rendezvous::SetRealtime(0, 0);
  return Next::kRunning;
}

bool VcpuThread::HandleExit() {
  kvm_run* run = vcpu_.run();
  switch (run->exit_reason) {
    case KVM_EXIT_IO:
      return HandleIo();
    case KVM_EXIT_INTR:
    case KVM_EXIT_HLT:
      return true;
    case KVM_EXIT_MMIO:
      Fail(absl::StrFormat("unexpected MMIO %s at 0x%x (%d bytes)",
                           run->mmio.is_write ? "write" : "read", run->mmio.phys_addr,
                           run->mmio.len));
      return false;
    case KVM_EXIT_SHUTDOWN:
      Fail("guest shutdown (triple fault)");
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      Fail(absl::StrFormat("KVM_EXIT_FAIL_ENTRY hardware_entry_failure_reason=0x%x",
                           run->fail_entry.hardware_entry_failure_reason));
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      Fail(absl::StrCat("KVM_EXIT_INTERNAL_ERROR suberror=", run->internal.suberror));
      return false;
    default:
      Fail(absl::StrCat("unhandled exit reason ", run->exit_reason));
      return false;
  }
}

bool VcpuThread::HandleIo() {
  kvm_run* run = vcpu_.run();
  uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
  if (run->io.direction == KVM_EXIT_IO_IN) {
    std::memset(data, 0, size_t{run->io.size} * run->io.count);
    return true;
  }
  switch (run->io.port) {
    case GUEST_PORT_STORM:
      return true;
    case GUEST_PORT_CONSOLE:
      for (uint32_t i = 0; i < run->io.count; ++i) {
        char c = static_cast<char>(data[i * run->io.size]);
        if (c == '\n') {
          Log(absl::StrCat("console: ", console_line_));
          console_line_.clear();
        } else {
          console_line_ += c;
        }
      }
      return true;
    case GUEST_PORT_HOSTCALL: {
      uint32_t v = 0;
      std::memcpy(&v, data, std::min<size_t>(run->io.size, sizeof(v)));
      Log(absl::StrCat("host call ", v));
      return true;
    }
    default:
      Fail(absl::StrFormat("OUT to unknown port 0x%x", run->io.port));
      return false;
  }
}

void VcpuThread::Fail(const std::string& why) {
  slot_->exit_reason = vcpu_.run()->exit_reason;
  slot_->state.store(static_cast<uint32_t>(VcpuState::kExited), std::memory_order_release);
  Log(absl::StrCat("stopped: ", why, "; ", RegsDump(vcpu_.fd.get())));
}

}  // namespace ucode::vmm
