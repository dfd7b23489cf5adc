// The emulated stop_machine_nmi() rendezvous, one stopper thread per logical CPU
// (stopper_threads.h), following the kernel's load_cpus_stopped() / __load_primary() /
// load_secondary() (arch/x86/kernel/cpu/microcode/core.c):
//   1. every online CPU arrives and waits until all have (arrival_timeout);
//   2. each core's primary thread kicks its offline siblings (they answer from the NMI
//      handler and are counted offline), then writes MSR 0x79 (ApplyUpdateOnCpu);
//   3. it tells its online siblings APPLY (success) or DONE (failure);
//   4. siblings wait for that word (sibling_timeout) and re-read the revision.
// Waits are futexes on per-CPU words (the kernel spins on them with interrupts off).
#ifndef UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_
#define UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "host/late_load/late_load.h"
#include "host/late_load/stopper_threads.h"

namespace ucode::late_load {

class EmulatedStopMachine {
 public:
  // Prepares one rendezvous over every CPU of `topology` (control words, each primary's
  // siblings, result.cpus) so that Run() allocates nothing before the CPUs are released.
  // Everything passed in must outlive the object. `new_revision` is the update's
  // revision, which siblings compare against.
  EmulatedStopMachine(platform::Platform& platform, const platform::Topology& topology,
                      absl::Span<const uint8_t> update, uint32_t new_revision,
                      const LateLoadOptions& options, LateLoadResult& result);
  EmulatedStopMachine(const EmulatedStopMachine&) = delete;
  EmulatedStopMachine& operator=(const EmulatedStopMachine&) = delete;

  // Runs the rendezvous on `stoppers` (one thread per topology CPU) and fills
  // result.cpus, activation_window and modelled_critical_path. Returns once every CPU has
  // left the rendezvous. Once only.
  void Run(StopperThreads& stoppers);

 private:
  // The per-CPU control word of the kernel's struct ucode_ctrl.
  enum Ctrl : uint32_t { kWait = 0, kApply = 1, kDone = 2 };
  struct Siblings {
    std::vector<size_t> online, offline;  // indexes into topology.cpus
  };

  void CpuMain(size_t index);
  bool Arrive();
  void Primary(size_t index, CpuResult& r);
  void Secondary(size_t index, CpuResult& r);
  void OfflineSibling(size_t index, CpuResult& r);

  platform::Platform& platform_;
  const platform::Topology& topology_;
  const absl::Span<const uint8_t> update_;
  const uint32_t new_revision_;
  const LateLoadOptions& options_;
  LateLoadResult& result_;  // each CPU writes only its own result_.cpus slot
  const uint32_t expected_;
  std::vector<Siblings> siblings_;  // per CPU; filled for primaries only

  std::atomic<uint32_t> arrived_{0};
  std::atomic<int64_t> all_arrived_ns_{0};
  std::atomic<int64_t> last_done_ns_{0};
  std::vector<std::atomic<uint32_t>> ctrl_;    // Ctrl, per CPU (online siblings)
  std::vector<std::atomic<uint32_t>> kicked_;  // 1 once kicked, per CPU (offline siblings)
};

}  // namespace ucode::late_load

#endif  // UCODE_HOST_LATE_LOAD_STOP_MACHINE_H_
