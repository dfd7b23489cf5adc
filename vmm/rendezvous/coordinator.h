// The cross-VM vCPU rendezvous coordinator: owns N ucode-vmm processes and the shared
// rendezvous area, and parks every vCPU of every VM, then releases them, handing each the
// new guest revision (MSR 0x8B) with the release.
//
// All methods run on the caller's thread (one owner; not thread-safe). The fast path is
// the shared area (area.h): a command is one store plus one FUTEX_WAKE, a park kick is one
// tgkill() per vCPU thread straight into the VMM process, and the coordinator sleeps on a
// single futex until the last vCPU acknowledges. A rendezvous wakes each parked vCPU
// thread once: the release carries the revision it writes before re-entering the guest.
// The control sockets are used for setup, guest-record snapshots and shutdown only.
//
// Failure rules (ARCHITECTURE.md 3.3): Park() is all or nothing (a VM that does not park
// by the deadline makes it release everything and fail naming the VM); each VMM releases
// its own vCPUs if parked for longer than `deadman` or if this process dies. The sequence
// around the host activation is orchestrator::RunUpdate's, not this class's.
#ifndef UCODE_VMM_RENDEZVOUS_COORDINATOR_H_
#define UCODE_VMM_RENDEZVOUS_COORDINATOR_H_

#include <sched.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/base/unique_fd.h"
#include "vmm/rendezvous/area.h"
#include "vmm/rendezvous/vmm_process.h"

namespace ucode::rendezvous {

struct CoordinatorOptions {
  std::string vmm_path;  // empty: FindVmmBinary()
  absl::Duration deadman = absl::Seconds(2);
  std::string log_dir;  // each VMM logs to <log_dir>/<name>.log; empty: our stderr
};

// What one vCPU's guest recorded, plus the VMM's park timestamps.
struct VcpuView {
  int index = 0;
  uint64_t iterations = 0;
  absl::Duration park_gap;     // guest-measured: the TSC gap that spans the last park
  // Guest-measured, leaving out park-spanning gaps: the largest TSC gap in the window the
  // last park closed (opened by the park before it or by OpenGapWindows()), i.e. what
  // ordinary scheduling cost this vCPU with no hold inside.
  absl::Duration baseline_gap;
  uint64_t first_rev_msr = 0;  // MSR 0x8B at guest start
  uint64_t rev_msr = 0;        // latest MSR 0x8B the guest read
  uint64_t backwards = 0;      // times the guest saw the revision decrease
  // Every revision change the guest saw (up to 6): MSR value, guest TSC, and the loop
  // iteration. Iterations order guest events against parks without trusting clocks:
  // an iteration above parked_iteration ran after this vCPU's last park ended.
  struct Change {
    uint64_t rev_msr;
    uint64_t guest_tsc;
    uint64_t iteration;
  };
  std::vector<Change> changes;
  uint64_t parked_iteration = 0;  // guest iteration counter during the last park
  int64_t parked_ns = 0;
  int64_t resumed_ns = 0;
  uint32_t deadman_releases = 0;
};

struct VmResult {
  std::string name;
  pid_t pid = 0;
  absl::Duration park_latency;  // park command -> last vCPU of this VM parked
  absl::Duration time_parked;   // first vCPU out of guest mode -> last one back in
  absl::Duration guest_blackout;  // largest park-spanning TSC gap its vCPUs measured
  absl::Duration baseline_max_gap;  // largest baseline_gap of its vCPUs (no hold inside)
  uint32_t revision_before = 0;   // as the guest read MSR 0x8B[63:32]
  uint32_t revision_after = 0;
  std::vector<VcpuView> vcpus;
};

// Why a vCPU does not run with the view the last ReleaseWithRevision() handed over.
enum class ViewMiss {
  // Its dead-man released it from the park before that release, so it never took the
  // view (it runs with the old one); parking it again can set it.
  kDeadmanReleased,
  kNoAck,     // it did not acknowledge the release otherwise (exited, or still parked)
  kReadBack,  // it took the release, but the write or the read-back failed
};

struct VcpuViewMiss {
  uint32_t vcpu = 0;
  ViewMiss why = ViewMiss::kNoAck;
  uint64_t readback = 0;  // kReadBack: MSR 0x8B as read back
  // "vcpu N did not take the release (dead-man released it)", "vcpu N read back 0x..".
  [[nodiscard]] std::string Describe() const;
};

class Coordinator {
 public:
  // Spawns one ucode-vmm per spec (names must be unique), attaches them to a new
  // rendezvous area and waits until every vCPU runs. On failure, stops what it started.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(std::vector<VmSpec> vms,
                                                            CoordinatorOptions options);
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  ~Coordinator();  // Shutdown()

  // The steps, in the order orchestrator::RunUpdate (vmm/orchestrator) drives them through
  // CoordinatorGuestGroup: Park(), then ReleaseWithRevision() (or Release() to abort).
  // Park() releases everything when it fails. A
  // successful Park() leaves the calling thread at kCoordinatorRtPriority (SCHED_FIFO)
  // until a release (or Shutdown()) restores it: whatever the caller runs while vCPUs are
  // held (the host activation) then runs before ordinary tasks, as stop_machine would.
  [[nodiscard]] absl::Status Park(absl::Duration deadline);
  // Releases every parked vCPU; MSR 0x8B untouched (an aborted rendezvous).
  [[nodiscard]] absl::Status Release(absl::Duration deadline);
  // Releases every parked vCPU, each writing MSR 0x8B = revision << 32 and reading it
  // back before it re-enters the guest. INTERNAL, naming each vCPU, when every vCPU was
  // released but a write or read-back failed or a vCPU did not take the release
  // (dead-man): those run with the old view, which the caller must report. A release that
  // failed itself keeps Release()'s error (DEADLINE_EXCEEDED), views named too.
  [[nodiscard]] absl::Status ReleaseWithRevision(uint32_t revision, absl::Duration deadline);

  // After ReleaseWithRevision(): the vCPUs of the VM at `vm` (Start() order) that do not
  // run with MSR 0x8B = `msr`, each with why; empty when all do.
  [[nodiscard]] std::vector<VcpuViewMiss> ViewNotSet(size_t vm, uint64_t msr) const;

  // Opens a new gap window in every guest (one GAP_WINDOW call per VMM): the next park
  // keeps the largest gap since now as each vCPU's baseline_gap.
  [[nodiscard]] absl::Status OpenGapWindows();

  // Snapshot of every guest record (one STATS call per VMM, in turn) with the park
  // timestamps of the last rendezvous.
  [[nodiscard]] absl::StatusOr<std::vector<VmResult>> ReadGuestViews();

  // Waits until every looping guest (all programs but halt) has run at least one
  // iteration, so that "revision before" is what the guest itself read.
  [[nodiscard]] absl::Status WaitGuestsRunning(absl::Duration timeout);
  // Waits until every looping guest has run past the iteration its last park stopped,
  // so that its record holds the gap spanning that park (VcpuView::park_gap) even when
  // the release left the revision it reads unchanged.
  [[nodiscard]] absl::Status WaitGuestsRanAfterPark(absl::Duration timeout);

  // A VMM that died (kill -9, a crash) between operations: reaped, and started again in
  // its slot with its spec, the guest seeing `revision`, logging to a new file
  // (`<name>.restart-<n>.log`). Returns one entry per VM restarted; the error names a VM
  // that could not be (its slot stays dead and every Park() fails naming it).
  struct Restart {
    size_t index = 0;
    std::string name;
    pid_t old_pid = 0;
    pid_t new_pid = 0;
    std::string how;       // VmmProcess::exit_description()
    std::string log_path;  // "" when logging to our stderr
  };
  [[nodiscard]] absl::StatusOr<std::vector<Restart>> RestartExited(uint32_t revision);

  // QUIT every VMM (SIGKILL after a grace period) and reap it. Idempotent.
  absl::Status Shutdown();

  [[nodiscard]] std::vector<pid_t> pids() const;
  [[nodiscard]] const Area& area() const { return *area_; }
  [[nodiscard]] int total_vcpus() const { return total_vcpus_; }
  // How long a VMM keeps its vCPUs parked before releasing them itself.
  [[nodiscard]] absl::Duration deadman() const { return deadman_; }
  // Timestamp of the last park command (CLOCK_MONOTONIC ns).
  [[nodiscard]] int64_t last_park_ns() const { return park_ns_; }
  // The last release: release command -> the last released vCPU's resumed_ns (taken as
  // it re-enters KVM_RUN), from the vCPUs' own timestamps. Measure release-all with this,
  // not with a clock read after Release() returns: that also counts how long this thread
  // waited for a core after dropping its real-time priority, which no vCPU waits for.
  [[nodiscard]] absl::Duration last_release_all() const { return release_all_; }

 private:
  Coordinator() = default;
  uint32_t Issue(Command command, uint32_t expected_acks);
  absl::Status ReleaseWith(Command command, absl::Duration deadline);
  void KickUnparked(uint32_t seq);
  // Waits until `done(vm, vcpu)` holds for every vCPU or the deadline passes; re-kicks
  // unparked vCPUs every kRekick when `rekick`. Returns the list of laggards.
  std::vector<std::string> WaitAll(uint32_t seq, absl::Duration deadline, bool rekick);
  absl::Status WaitReleased(uint32_t seq, absl::Duration deadline);
  // Polls the guest records until `ran(view)` holds for every vCPU of every looping guest;
  // the error says `what` and names the vCPUs it does not hold for.
  absl::Status WaitGuests(absl::Duration timeout, absl::string_view what,
                          const std::function<bool(const VcpuView&)>& ran);
  void HoldRealtime();
  void DropRealtime();

  std::vector<std::unique_ptr<VmmProcess>> vmms_;
  std::string vmm_path_;  // for RestartExited
  std::string log_dir_;
  int restarts_ = 0;
  UniqueFd area_fd_;
  Area* area_ = nullptr;
  int total_vcpus_ = 0;
  absl::Duration deadman_;
  uint32_t seq_ = 0;
  uint32_t park_seq_ = 0;          // the last kPark
  uint32_t view_release_seq_ = 0;  // the last kReleaseWithRevision
  uint32_t view_park_seq_ = 0;     // the kPark it released
  int64_t park_ns_ = 0;
  int64_t release_ns_ = 0;
  absl::Duration release_all_;
  // The thread Park() raised to kCoordinatorRtPriority and what it ran before; a release
  // restores it (tid 0: nothing held).
  struct HeldPriority {
    pid_t tid = 0;
    int policy = 0;
    sched_param param{};
    bool raised = false;
  };
  HeldPriority held_rt_;
};

}  // namespace ucode::rendezvous

#endif  // UCODE_VMM_RENDEZVOUS_COORDINATOR_H_
