// The emulated stop_machine_nmi() rendezvous: one thread per logical CPU, following the
// kernel's load_cpus_stopped() / __load_primary() / load_secondary()
// (arch/x86/kernel/cpu/microcode/core.c):
//   1. every online CPU arrives and waits until all have (arrival_timeout);
//   2. each core's primary thread kicks its offline siblings (they answer from the NMI
//      handler and are counted offline), then writes MSR 0x79 (ApplyUpdateOnCpu);
//   3. it tells its online siblings APPLY (success) or DONE (failure);
//   4. siblings wait for that word (sibling_timeout) and re-read the revision.
#ifndef UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_
#define UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_

#include "host/late_load/late_load.h"

namespace ucode::late_load {

// Runs the rendezvous over every CPU of `topology` and fills result.cpus,
// activation_window and modelled_critical_path. `new_revision` is the update's revision,
// which siblings compare against. Joins every thread before returning.
void RunEmulatedStopMachine(platform::Platform& platform, const platform::Topology& topology,
                            absl::Span<const uint8_t> update, uint32_t new_revision,
                            const LateLoadOptions& options, LateLoadResult& result);

}  // namespace ucode::late_load

#endif  // UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_
