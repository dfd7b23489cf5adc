// The one interface the update orchestrator sees VMs through: a group of VMs of one kind
// (our ucode-vmm fleet through the rendezvous coordinator; libvirt domains, held by the
// kernel freezer or by libvirt), one implementation per backend. The orchestrator parks
// every group, runs the host load, sets the guest view, releases every group, verifies,
// notifies agents and reports.
//
// Threading: the orchestrator calls a group from one thread at a time, but not always the
// same thread (with several groups, Park/SetRevision/Release fan out one thread per group
// and join before the next step). Implementations need no locking for that pattern.
//
// Failure rules (ARCHITECTURE.md 3.3): Park() is all-or-nothing within the group: when any
// VM misses the deadline the group releases what it parked and fails naming the VMs. The
// orchestrator then releases every other group and aborts with the host untouched.
// Release() must be safe to call when nothing is parked (it is the RAII guard's action).
#ifndef UCODE_VMM_ORCHESTRATOR_GUEST_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_GUEST_GROUP_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace ucode::orchestrator {

// What a VM's guest view (MSR 0x8B) is after SetRevision / VerifyGuestViews.
enum class ViewStatus {
  kUnchanged,          // not touched yet (or the operation aborted before the view step)
  kSet,                // written on every vCPU and read back through the VMM
  kVerified,           // kSet, and the guest itself read the new revision
  kStaleUntilRestart,  // the VMM cannot change it (QEMU keeps the start-time revision)
  kFailed,             // write, read-back or guest check failed: see detail
};
const char* ViewStatusName(ViewStatus status);

// Why a view is kFailed, as far as what follows is concerned: the orchestrator parks a
// VM again only for kMissedRelease, where another park can set the view; every other
// failure is reported (VerifyGuestViews) and not retried.
enum class ViewFailure {
  kNone,
  // A vCPU was not parked when the release carried the view (its dead-man had released
  // it), so it never took it and runs with the old one.
  kMissedRelease,
  kNotSet,  // a write, read-back or guest check failed, or a vCPU did not acknowledge
};

struct VmViewOutcome {
  std::string name;
  ViewStatus status = ViewStatus::kUnchanged;
  std::string detail;                        // why, for kStaleUntilRestart / kFailed
  ViewFailure failure = ViewFailure::kNone;  // kFailed only; kMissedRelease wins a mix
};

// Per-VM result of SetRevision / VerifyGuestViews. `status` is OK when every VM is kSet /
// kVerified or kStaleUntilRestart (stale is reported, not an error); otherwise it names
// the VMs that failed.
struct GuestViewResult {
  absl::Status status;
  std::vector<VmViewOutcome> vms;
};

// One VM's line of the report. Durations are zero when the backend cannot measure them;
// `guest_measured` says whether blackout and revisions come from the guest's own reads.
struct VmReport {
  std::string kind;  // GuestGroup::kind()
  std::string name;
  int vcpus = 0;
  absl::Duration park_latency;    // park command -> last vCPU of this VM parked
  absl::Duration time_parked;     // first vCPU out of guest mode -> last one back in
  absl::Duration guest_blackout;  // largest park-spanning TSC gap the guest measured
  // Largest TSC gap the guest measured before the park (from Prepare() to the park), with
  // no hold inside: what ordinary scheduling (overcommit) costs it anyway.
  absl::Duration baseline_max_gap;
  bool guest_measured = false;
  // How the VM was held ("rendezvous", "freeze", "suspend"); empty: not said.
  std::string pause;
  // When the blackout comes from the guest's agent rather than from the VMM: the clock it
  // read ("CLOCK_MONOTONIC"), and its largest gap before the pause and overall.
  std::string blackout_clock;
  absl::Duration baseline_gap;
  absl::Duration max_gap;
  uint32_t revision_before = 0;   // MSR 0x8B[63:32] as the guest read it
  uint32_t revision_after = 0;
  uint64_t backwards = 0;         // times a guest saw the revision decrease (must be 0)
  uint32_t deadman_releases = 0;  // vCPUs the VMM's own dead-man released
  ViewStatus view = ViewStatus::kUnchanged;
  std::string view_detail;
};

// Notifications for guest agents (guest-ucode-prepare before the rendezvous,
// guest-ucode-complete after). Bounded: a silent or hostile agent never blocks the host.
struct AgentNotice {
  enum class Phase { kPrepare, kComplete };
  Phase phase = Phase::kPrepare;
  uint32_t old_revision = 0;
  uint32_t new_revision = 0;
};
const char* AgentPhaseName(AgentNotice::Phase phase);

struct AgentReply {
  std::string vm;
  bool answered = false;  // false: no agent, or it timed out
  absl::Status status;    // the agent's verdict (or why there is none)
  std::string message;
};

struct NotifyResult {
  std::vector<AgentReply> replies;  // empty: this group has no agents
};

class GuestGroup {
 public:
  virtual ~GuestGroup() = default;

  // "ucode-vmm", "libvirt": shown in the report.
  [[nodiscard]] virtual std::string kind() const = 0;
  [[nodiscard]] virtual std::vector<std::string> names() const = 0;
  [[nodiscard]] virtual int total_vcpus() const = 0;

  // Called once before the operation starts (guests must be running so that "revision
  // before" is what the guest read). Default: nothing to wait for.
  [[nodiscard]] virtual absl::Status Prepare(absl::Duration timeout) {
    (void)timeout;
    return absl::OkStatus();
  }

  // Holds every vCPU of every VM out of guest mode. All or nothing (see above); the error
  // is ABORTED and names the VMs (and vCPUs, where known) that did not park.
  [[nodiscard]] virtual absl::Status Park(absl::Duration deadline) = 0;

  // While parked: sets MSR 0x8B = revision << 32 on every vCPU and reads it back. A backend
  // may instead hand the revision to each vCPU with the next Release() (ucode-vmm: one
  // wake-up per vCPU); its per-VM outcome is then known after Release(), and a view that
  // was not set fails VerifyGuestViews().
  [[nodiscard]] virtual GuestViewResult SetRevision(uint32_t revision,
                                                    absl::Duration deadline) = 0;

  // Lets every parked vCPU run again. OK when nothing is parked.
  [[nodiscard]] virtual absl::Status Release(absl::Duration deadline) = 0;

  // The outcome of the last SetRevision() once Release() has run. A backend that hands the
  // revision over with the release knows only then which views were set; one that sets
  // them while parked has said so in SetRevision() already (the default: nothing more).
  [[nodiscard]] virtual GuestViewResult ViewAfterRelease() const { return {}; }

  // After release: waits (up to `timeout`) until each guest itself reads `revision` (where
  // the backend can see that) and re-reads the view through the VMM. A VM whose VMM cannot
  // change the view stays kStaleUntilRestart; one whose guest cannot be observed keeps kSet
  // with a detail saying why.
  [[nodiscard]] virtual GuestViewResult VerifyGuestViews(uint32_t revision,
                                                         absl::Duration timeout) = 0;

  // Per-VM measurements of the last park/release and the guest views.
  [[nodiscard]] virtual std::vector<VmReport> Report() = 0;

  // The last Release(), from the release command to the last vCPU back in guest mode, as
  // the VMs themselves timed it; nullopt when the backend cannot tell (the orchestrator
  // then times the call). A clock read after Release() returns would also count how long
  // the caller waited for a core, which no vCPU waits for.
  [[nodiscard]] virtual std::optional<absl::Duration> LastReleaseAll() const {
    return std::nullopt;
  }

  // How long a parked VM of this group stays parked before it releases itself (its
  // dead-man deadline); nullopt when nothing releases it but Release().
  [[nodiscard]] virtual std::optional<absl::Duration> deadman() const { return std::nullopt; }

  // What the operator should know about how this group ran ("suspended instead of
  // frozen: ..."); copied into the report's notes.
  [[nodiscard]] virtual std::vector<std::string> Notes() const { return {}; }

  // Sends `notice` to each VM's guest agent; waits at most `timeout` in total.
  [[nodiscard]] virtual NotifyResult Notify(const AgentNotice& notice, absl::Duration timeout) {
    (void)notice;
    (void)timeout;
    return {};
  }
};

// Cross-group steps: fan out (one thread per group; inline for a single group), then fan
// in, and the guard that keeps any VM from being left parked.
// Runs fn(group, index) for every group concurrently; returns each one's status, in order.
std::vector<absl::Status> FanOut(absl::Span<GuestGroup* const> groups,
                                 const std::function<absl::Status(GuestGroup&, size_t)>& fn);

// Parks every group. All or nothing: if any group fails, every group is released and the
// error (ABORTED) names each failing group's VMs.
absl::Status ParkAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline);

// Releases every group; the error lists every group that failed.
absl::Status ReleaseAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline);

// Sets the guest view in every group; `results` gets each group's outcome.
absl::Status SetRevisionAll(absl::Span<GuestGroup* const> groups, uint32_t revision,
                            absl::Duration deadline, std::vector<GuestViewResult>* results);

// Releases every group on scope exit unless disarmed: no error path leaves a VM parked.
class ReleaseGuard {
 public:
  ReleaseGuard(absl::Span<GuestGroup* const> groups, absl::Duration deadline)
      : groups_(groups), deadline_(deadline) {}
  ReleaseGuard(const ReleaseGuard&) = delete;
  ReleaseGuard& operator=(const ReleaseGuard&) = delete;
  ~ReleaseGuard() {
    if (armed_) ReleaseAll(groups_, deadline_).IgnoreError();
  }
  void Arm() { armed_ = true; }
  void Disarm() { armed_ = false; }

 private:
  absl::Span<GuestGroup* const> groups_;
  absl::Duration deadline_;
  bool armed_ = false;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_GUEST_GROUP_H_
