#include "vmm/rendezvous/area.h"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <climits>

namespace ucode::rendezvous {

bool SetRealtime(pid_t tid, int priority) {
  sched_param p{};
  p.sched_priority = priority;
  return sched_setscheduler(tid, priority > 0 ? SCHED_FIFO : SCHED_OTHER, &p) == 0;
}

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, absl::Duration timeout) {
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout != absl::InfiniteDuration()) {
    if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
    ts = absl::ToTimespec(timeout);
    tsp = &ts;
  }
  // EAGAIN (value already changed), EINTR and ETIMEDOUT all mean "re-check".
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr,
          0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr,
          nullptr, 0);
}

void Acknowledge(Area* area, VmSlot* vm, VcpuSlot* vcpu, uint32_t seq) {
  vcpu->ack_seq.store(seq, std::memory_order_release);
  vm->acks.fetch_add(1, std::memory_order_acq_rel);
  uint32_t n = area->acks.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (n >= area->expected_acks.load(std::memory_order_acquire)) FutexWakeAll(&area->acks);
}

}  // namespace ucode::rendezvous
