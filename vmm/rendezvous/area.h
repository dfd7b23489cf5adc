// The shared-memory rendezvous area: one memfd mapped by the coordinator and by every
// ucode-vmm process (the coordinator creates it and passes it to each VMM over its control
// socket with SCM_RIGHTS). It is the fast path of the rendezvous: a command is one store
// plus one FUTEX_WAKE, an acknowledgement is one atomic increment, so no step costs a
// request/response round trip over a socket.
//
// Who writes what:
//   - coordinator: `command` (the futex word every parked vCPU thread sleeps on),
//     `revision` (before the command that carries it), `expected_acks`, `acks` and
//     `arrived` (reset), `command_ns`.
//   - vCPU thread (vm v, vcpu i): vm[v].vcpu[i] except `guest`; `acks`, `arrived` (+1).
//   - VMM control thread: vm[v] header, vm[v].vcpu[i].guest (copied on STATS).
// All cross-process synchronisation goes through the std::atomic fields (lock-free, so
// valid on shared memory) and futexes without FUTEX_PRIVATE_FLAG.
#ifndef UCODE_VMM_RENDEZVOUS_AREA_H_
#define UCODE_VMM_RENDEZVOUS_AREA_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace ucode::rendezvous {

inline constexpr int kMaxVms = 64;
inline constexpr int kMaxVcpusPerVm = 8;

// The command word packs a sequence number and the command so that a vCPU reads both in
// one atomic load and the futex sleeps on exactly that value.
enum class Command : uint32_t {
  kNone = 0,
  kPark = 1,     // leave guest mode and stay out
  kRelease = 3,  // (parked) re-enter KVM_RUN; MSR 0x8B untouched (aborted rendezvous)
  // (parked) write MSR 0x8B = `revision`, read it back, then re-enter KVM_RUN: the new
  // guest view travels with the release, so each vCPU thread wakes once per rendezvous.
  kReleaseWithRevision = 4,
};
inline constexpr uint32_t kCommandBits = 4;
inline uint32_t MakeCommandWord(uint32_t seq, Command c) {
  return (seq << kCommandBits) | static_cast<uint32_t>(c);
}
inline Command CommandOf(uint32_t word) {
  return static_cast<Command>(word & ((1u << kCommandBits) - 1));
}
inline uint32_t SeqOf(uint32_t word) { return word >> kCommandBits; }

enum class VcpuState : uint32_t { kStarting = 0, kRunning = 1, kParked = 2, kExited = 3 };

// Copy of the guest program's record (vmm/guest/guest_record.h), made by the VMM on STATS.
struct GuestRecordCopy {
  uint64_t iterations;
  uint64_t last_tsc;
  uint64_t max_gap;
  uint64_t max_gap_at;
  uint64_t cur_rev;
  uint64_t first_rev;
  uint64_t backwards;
  uint64_t nchanges;
  struct {
    uint64_t tsc;
    uint64_t rev;
    uint64_t iteration;
  } changes[6];
  uint64_t park_mark;
  uint64_t park_gap;  // TSC ticks between the last read before the park and the first after
  uint64_t window_gap_at_park;  // largest gap of the window that the last park closed
};
static_assert(sizeof(GuestRecordCopy) == 0xE8);

struct VcpuSlot {
  std::atomic<uint32_t> ack_seq;  // sequence of the last command this vCPU completed
  std::atomic<uint32_t> state;    // VcpuState
  int32_t tid;
  int32_t last_errno;           // kReleaseWithRevision: 0, or -1 (write or read-back failed)
  int64_t kicked_out_ns;        // CLOCK_MONOTONIC: KVM_RUN returned for the park
  int64_t parked_ns;            // parked and acknowledged
  int64_t resumed_ns;           // about to re-enter KVM_RUN after release
  uint64_t parked_iteration;    // the guest's iteration counter while parked
  uint64_t revision_readback;   // MSR 0x8B read back by kReleaseWithRevision
  std::atomic<uint32_t> deadman_releases;  // times this vCPU released itself
  // The park (command seq) this vCPU last released itself from: tells a vCPU the dead-man
  // released in this rendezvous from one it released in an earlier one (the count above
  // only grows).
  std::atomic<uint32_t> deadman_seq;
  uint32_t exit_reason;                    // KVM exit reason if state == kExited
  GuestRecordCopy guest;
};

struct VmSlot {
  std::atomic<int32_t> pid;  // 0 = slot unused
  uint32_t vcpus;
  uint32_t tsc_khz;          // KVM_GET_TSC_KHZ
  std::atomic<uint32_t> acks;  // acks for the current command from this VM
  VcpuSlot vcpu[kMaxVcpusPerVm];
};

struct Area {
  std::atomic<uint32_t> command;        // futex word, MakeCommandWord(seq, Command)
  std::atomic<uint32_t> acks;           // futex word: vCPU acks for the current seq
  std::atomic<uint32_t> expected_acks;  // the vCPU whose ack makes acks == this wakes
  std::atomic<uint32_t> arrived;        // release barrier: vCPUs woken by kRelease
  std::atomic<uint64_t> revision;       // MSR 0x8B value for kReleaseWithRevision
  std::atomic<int64_t> command_ns;      // CLOCK_MONOTONIC when `command` was issued
  VmSlot vm[kMaxVms];
};

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

inline constexpr size_t kAreaSize = (sizeof(Area) + 4095) & ~size_t{4095};

// Real-time priorities of the rendezvous path (SCHED_FIFO, like the kernel's stop_machine
// stopper threads): the coordinator runs above the vCPU threads from the park until the
// release (coordinator.h), the kicked vCPU threads run above every ordinary task until
// they re-enter the guest, where they drop back to SCHED_OTHER. The emulated host's
// stopper threads (host/platform/stopper_threads.h) run above both. Without this, on a loaded host a kicked or released vCPU
// thread waits behind every runnable task for its turn.
inline constexpr int kCoordinatorRtPriority = 2;
inline constexpr int kVcpuRtPriority = 1;
// Sets `tid` (0: the caller) to SCHED_FIFO at `priority`, or to SCHED_OTHER when
// priority is 0. Best effort: false without CAP_SYS_NICE.
bool SetRealtime(pid_t tid, int priority);

// CLOCK_MONOTONIC in ns: comparable across the coordinator and every VMM process.
int64_t MonotonicNs();

// Cross-process futex helpers (no FUTEX_PRIVATE_FLAG: the word is in a shared memfd).
// FutexWait returns when *word != expected, on a wake, on a signal, or at `timeout`
// (absl::InfiniteDuration() for none); callers re-check their condition.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, absl::Duration timeout);
void FutexWakeAll(std::atomic<uint32_t>* word);

// Records the acknowledgement of command `seq` by one vCPU of `vm`: the vCPU's ack_seq,
// then the counters; the vCPU that completes the expected count wakes the coordinator.
void Acknowledge(Area* area, VmSlot* vm, VcpuSlot* vcpu, uint32_t seq);

}  // namespace ucode::rendezvous

#endif  // UCODE_VMM_RENDEZVOUS_AREA_H_
