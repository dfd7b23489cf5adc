// The emulated stop_machine_nmi() rendezvous, one stopper thread per logical CPU
// (stopper_threads.h), following the kernel's load_primary() / __load_primary() /
// load_secondary() / kick_offline_cpus() (arch/x86/kernel/cpu/microcode/core.c):
//   0. CPU 0 kicks every offline SMT sibling by NMI and waits for all of them
//      (offline_kick_timeout); if one is missing it skips its own load, so the others
//      time out, and it releases the offline siblings in any case;
//   1. every online CPU arrives and waits until all have (arrival_timeout); one that gives
//      up takes its arrival back, so a late comer times out too (wait_for_cpus());
//   2. each core's primary thread writes MSR 0x79 (ApplyUpdateOnCpu), unless the core
//      already runs that revision or newer (UCODE_OK);
//   3. it tells its online siblings APPLY (updated or already current) or DONE (failure);
//   4. siblings wait for that word (sibling_timeout) and re-read the revision.
// Waits are futexes on per-CPU words (the kernel spins on them with interrupts off).
#ifndef UCODE_HOST_PLATFORM_STOP_MACHINE_H_
#define UCODE_HOST_PLATFORM_STOP_MACHINE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "host/platform/platform.h"
#include "host/platform/stopper_threads.h"

namespace ucode::platform {

class EmulatedPlatform;

class EmulatedStopMachine : public PreparedActivation {
 public:
  // Checks the CPUs are loadable as the kernel's setup_cpus() does, leases the stopper
  // threads (StopperThreads::Acquire) and prepares one rendezvous over every CPU of
  // `topology` (control words, each primary's siblings, the per-CPU results), so that
  // Activate() creates and allocates nothing before the CPUs are released. `platform` and
  // `update` must outlive the object; `revision` is the update's, which siblings compare
  // against.
  static absl::StatusOr<std::unique_ptr<PreparedActivation>> Prepare(
      EmulatedPlatform& platform, const Topology& topology, absl::Span<const uint8_t> update,
      uint32_t revision, const ActivationOptions& options);
  EmulatedStopMachine(const EmulatedStopMachine&) = delete;
  EmulatedStopMachine& operator=(const EmulatedStopMachine&) = delete;

  // Runs the rendezvous on the leased stopper threads (one per topology CPU).
  Activation Activate() override;

 private:
  // The per-CPU control word of the kernel's struct ucode_ctrl.
  enum Ctrl : uint32_t { kWait = 0, kApply = 1, kDone = 2 };
  struct Siblings {
    std::vector<size_t> online, offline;  // indexes into topology.cpus
  };

  // Offline sibling word: kicked by CPU 0, then released by it.
  enum Kick : uint32_t { kNotKicked = 0, kKicked = 1, kReleased = 2 };

  void CpuMain(size_t index);
  bool KickOfflineSiblings();
  void ReleaseOfflineSiblings();
  bool Arrive(int cpu);
  void Primary(size_t index, CpuResult& r);
  void Secondary(size_t index, CpuResult& r);
  void OfflineSibling(size_t index, CpuResult& r);

  EmulatedStopMachine(EmulatedPlatform& platform, const Topology& topology,
                      absl::Span<const uint8_t> update, uint32_t new_revision,
                      const ActivationOptions& options);

  EmulatedPlatform& platform_;
  const Topology topology_;
  const absl::Span<const uint8_t> update_;
  const uint32_t new_revision_;
  const ActivationOptions options_;
  StopperThreads::Lease stoppers_;
  Activation result_;  // each CPU writes only its own result_.cpus slot
  const uint32_t expected_;
  std::vector<Siblings> siblings_;  // per CPU; filled for primaries only
  std::vector<size_t> offline_;     // indexes of every offline CPU
  size_t kicker_ = 0;               // CPU 0: kicks and releases the offline siblings
  int punctual_ = 0;                // online CPUs without an arrival fault

  // The kernel's late_cpus_in: counts down to 0 as CPUs arrive; a CPU that gives up adds
  // its arrival back, so the count can reach 0 only if nobody gave up.
  std::atomic<uint32_t> late_cpus_in_;
  std::atomic<uint32_t> gave_up_{0};         // CPUs that timed out waiting for arrival
  std::atomic<uint32_t> offline_in_nmi_{0};  // offline siblings that answered the kick
  std::atomic<int64_t> all_arrived_ns_{0};
  std::atomic<int64_t> last_done_ns_{0};
  std::vector<std::atomic<uint32_t>> ctrl_;    // Ctrl, per CPU (online siblings)
  std::vector<std::atomic<uint32_t>> kicked_;  // Kick, per CPU (offline siblings)
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_STOP_MACHINE_H_
