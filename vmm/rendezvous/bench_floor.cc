#include "vmm/rendezvous/bench_floor.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>
#include <vector>

#include "host/base/status_macros.h"
#include "vmm/guest/guest_programs.h"
#include "vmm/guest/guest_record.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/rendezvous/area.h"
#include "vmm/rendezvous/bench_points.h"

namespace ucode::rendezvous {
namespace {

using bench::Median;

constexpr int kKickSignal = SIGUSR1;
constexpr int64_t kStepTimeoutNs = 2'000'000'000;

thread_local kvm_run* tls_bare_run = nullptr;

// The same handler as ucode-vmm's (vmm/kvm/vcpu_thread.cc): immediate_exit, nothing else.
void OnKick(int) {
  kvm_run* run = tls_bare_run;
  if (run != nullptr) __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_RELEASE);
}

uint64_t LoadRecord(const uint8_t* rec, int offset) {
  return __atomic_load_n(reinterpret_cast<const uint64_t*>(rec + offset), __ATOMIC_ACQUIRE);
}

// One vCPU thread reduced to the kick protocol: run until kicked, report parked, sleep on
// a futex until released, run again.
class BareVcpu {
 public:
  explicit BareVcpu(vmm::VcpuFd vcpu) : vcpu_(std::move(vcpu)) {}
  BareVcpu(const BareVcpu&) = delete;
  BareVcpu& operator=(const BareVcpu&) = delete;
  ~BareVcpu() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Main(); });
    while (tid_.load() == 0) sched_yield();
  }
  void Stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    want_parked_.store(0);
    FutexWakeAll(&want_parked_);
    syscall(SYS_tgkill, getpid(), tid_.load(), kKickSignal);
    thread_.join();
  }

  [[nodiscard]] pid_t tid() const { return tid_.load(); }

  // Kick -> parked, in ns; the vCPU stays parked.
  absl::StatusOr<int64_t> Park() {
    const int64_t t0 = MonotonicNs();
    want_parked_.store(1, std::memory_order_release);
    syscall(SYS_tgkill, getpid(), tid_.load(), kKickSignal);
    SetRealtime(tid_.load(), kVcpuRtPriority);
    while (parked_.load(std::memory_order_acquire) == 0) {
      if (failed_.load()) return absl::InternalError("bare vCPU: KVM_RUN failed");
      if (MonotonicNs() - t0 > kStepTimeoutNs) return absl::DeadlineExceededError("bare park");
      FutexWait(&parked_, 0, absl::Milliseconds(100));
    }
    return parked_ns_.load() - t0;
  }
  [[nodiscard]] int64_t reentry_ns() const { return reentry_ns_.load(); }
  void Release() {
    parked_.store(0, std::memory_order_relaxed);
    want_parked_.store(0, std::memory_order_release);
    FutexWakeAll(&want_parked_);
  }

 private:
  void Main() {
    tls_bare_run = vcpu_.run();
    SetRealtime(0, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, kKickSignal);
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    tid_.store(static_cast<pid_t>(syscall(SYS_gettid)));
    kvm_run* run = vcpu_.run();
    while (!stop_.load()) {
      // Clear, then look: a kick that lands after the look still stops KVM_RUN.
      __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
      if (want_parked_.load(std::memory_order_acquire) == 1) {
        parked_ns_.store(MonotonicNs());
        parked_.store(1, std::memory_order_release);
        FutexWakeAll(&parked_);
        while (want_parked_.load(std::memory_order_acquire) == 1 && !stop_.load()) {
          FutexWait(&want_parked_, 1, absl::InfiniteDuration());
        }
        // Timed where ucode-vmm takes resumed_ns: before dropping back to ordinary
        // priority for the guest (whatever waiting for a core follows is in the
        // guest-progress figure, as it is in the guest's own gap).
        reentry_ns_.store(MonotonicNs());
        SetRealtime(0, 0);
        continue;
      }
      if (ioctl(vcpu_.fd.get(), KVM_RUN, 0) < 0 && errno != EINTR && errno != EAGAIN) {
        failed_.store(true);
        return;
      }
    }
    tls_bare_run = nullptr;
  }

  vmm::VcpuFd vcpu_;
  std::thread thread_;
  std::atomic<pid_t> tid_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<uint32_t> want_parked_{0};  // futex word: 1 = stay out of the guest
  std::atomic<uint32_t> parked_{0};       // futex word: 1 = out of KVM_RUN and parked
  std::atomic<int64_t> parked_ns_{0};
  std::atomic<int64_t> reentry_ns_{0};  // released, about to re-enter KVM_RUN
};

// Restores the caller's scheduling policy and CPU affinity on scope exit.
class PolicyRestorer {
 public:
  PolicyRestorer() : policy_(sched_getscheduler(0)) {
    sched_getparam(0, &param_);
    CPU_ZERO(&cpus_);
    sched_getaffinity(0, sizeof(cpus_), &cpus_);
  }
  ~PolicyRestorer() {
    sched_setscheduler(0, policy_, &param_);
    sched_setaffinity(0, sizeof(cpus_), &cpus_);
  }
  // Two CPUs the caller may run on (the same one twice when it has only one).
  std::pair<int, int> TwoCpus() const {
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE && second < 0; ++c) {
      if (!CPU_ISSET(c, &cpus_)) continue;
      (first < 0 ? first : second) = c;
    }
    return {first, second < 0 ? first : second};
  }

 private:
  int policy_;
  sched_param param_{};
  cpu_set_t cpus_;
};

void Pin(pid_t tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(tid, sizeof(set), &set);
}

}  // namespace

absl::StatusOr<BareVcpuFloor> MeasureBareVcpuFloor(int rounds) {
  struct sigaction sa {};
  sa.sa_handler = OnKick;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return -EINTR
  if (sigaction(kKickSignal, &sa, nullptr) < 0) return ErrnoStatus(errno, "sigaction");
  ASSIGN_OR_RETURN(guest::GuestProgram program, guest::FindGuestProgram("spin"));
  ASSIGN_OR_RETURN(vmm::KvmVm vm, vmm::KvmVm::Create(4 << 20));
  RETURN_IF_ERROR(vm.LoadProgram(program.code));
  ASSIGN_OR_RETURN(vmm::VcpuFd fd, vm.CreateVcpu(0, uint64_t{1} << 32));
  const uint8_t* rec = vm.memory() + GUEST_RECORD_BASE;

  // This thread spins on the guest's counter to see the release take effect; it must not
  // hold the core the woken vCPU thread needs (a woken task waits for a migration when
  // a real-time spinner holds its core), so each has a CPU of its own. The vCPU thread
  // starts (and runs the guest) at ordinary priority before this one turns real-time.
  PolicyRestorer restore;
  const auto [mine, theirs] = restore.TwoCpus();
  BareVcpu vcpu(std::move(fd));
  vcpu.Start();
  Pin(vcpu.tid(), theirs);
  Pin(0, mine);
  SetRealtime(0, kCoordinatorRtPriority);
  std::vector<double> kick, reentry, progress;
  for (int i = -2; i < rounds; ++i) {
    // Let the guest run between rounds (it must have run at least one iteration).
    const int64_t start = MonotonicNs();
    const uint64_t before = LoadRecord(rec, REC_ITERATIONS);
    while (LoadRecord(rec, REC_ITERATIONS) == before || MonotonicNs() - start < 2'000'000) {
      if (MonotonicNs() - start > kStepTimeoutNs) {
        return absl::DeadlineExceededError("bare vCPU: the guest does not run");
      }
      usleep(200);
    }
    ASSIGN_OR_RETURN(int64_t parked_ns, vcpu.Park());
    const uint64_t parked_at = LoadRecord(rec, REC_ITERATIONS);
    const int64_t t1 = MonotonicNs();
    vcpu.Release();
    while (LoadRecord(rec, REC_ITERATIONS) == parked_at) {
      if (MonotonicNs() - t1 > kStepTimeoutNs) {
        return absl::DeadlineExceededError("bare vCPU: no guest progress after the release");
      }
    }
    const int64_t t2 = MonotonicNs();
    if (i < 0) continue;
    kick.push_back(parked_ns / 1e3);
    reentry.push_back((vcpu.reentry_ns() - t1) / 1e3);
    progress.push_back((t2 - t1) / 1e3);
  }
  vcpu.Stop();
  return BareVcpuFloor{.kick_to_parked_us = Median(kick),
                       .release_to_reentry_us = Median(reentry),
                       .release_to_progress_us = Median(progress)};
}

}  // namespace ucode::rendezvous
