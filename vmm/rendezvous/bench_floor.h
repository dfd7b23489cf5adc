// The physical floor of a rendezvous on this machine, measured in-process on one bare KVM
// vCPU running `spin`: no coordinator, no VMM process, no shared area. A park is the
// signal + immediate_exit kick alone (KVM API document 5., immediate_exit), a release is
// one FUTEX_WAKE of the parked thread. bench_rendezvous divides each shape's figures by
// these, measured in the same run.
#ifndef UCODE_VMM_RENDEZVOUS_BENCH_FLOOR_H_
#define UCODE_VMM_RENDEZVOUS_BENCH_FLOOR_H_

#include "absl/status/statusor.h"

namespace ucode::rendezvous {

struct BareVcpuFloor {
  double kick_to_parked_us = 0;       // kick sent -> the vCPU thread is out of KVM_RUN
  double release_to_reentry_us = 0;   // release sent -> the thread re-enters KVM_RUN
  double release_to_progress_us = 0;  // release sent -> the guest's iteration counter moves
};

// Medians over `rounds` park/release cycles (plus two warm-up rounds). The thread
// priorities follow the real path (area.h): the caller at kCoordinatorRtPriority, the
// kicked vCPU at kVcpuRtPriority until it re-enters the guest. Guest progress is seen by
// this thread spinning on the guest's counter, so the two threads are pinned to two CPUs.
// No guest-TSC figure: where the host TSC is unstable (nested KVM, as on our development
// machines) KVM freezes a guest's TSC while its vCPU is not loaded and catches it up
// only on some clock updates (a CPU migration, KVM_KVMCLOCK_CTRL), so a bare park the
// guest may not see at all is no floor for what it sees.
absl::StatusOr<BareVcpuFloor> MeasureBareVcpuFloor(int rounds);

}  // namespace ucode::rendezvous

#endif  // UCODE_VMM_RENDEZVOUS_BENCH_FLOOR_H_
