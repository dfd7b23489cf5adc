// LibvirtGuestGroup: libvirt domains (VMs we do not own) as a GuestGroup.
//
// Park holds every domain at once through a DomainPauser (domain_pauser.h): the kernel
// freezer on QEMU's vCPU threads (FreezePauser) or virDomainSuspend acknowledged by the
// SUSPENDED event (SuspendPauser); Release lets them go the same way. PauseMode kAuto
// (the default) freezes when this host's kernel offers a freezer and the domains' QEMU
// processes are local, and otherwise suspends, saying why in Notes(). All or nothing: if
// any domain fails to park, the ones this group held are released and Park fails naming
// the others. A domain someone else had already paused is left alone: it counts as
// parked (its vCPUs are out of guest mode), is never resumed by us, and the report says
// so.
//
// Guest blackout: ucode-agent measures CLOCK_MONOTONIC gaps between prepare and complete
// and returns them with complete; the report shows the gap that spanned the pause, with
// the clock named. A domain without an agent has none ("-").
//
// QEMU keeps the microcode revision (MSR 0x8B) it started the vCPUs with, so SetRevision
// marks every domain "stale until restart" and never claims otherwise.
//
// Notify sends guest-ucode-prepare / guest-ucode-complete to every domain's agent at once
// (virDomainQemuAgentCommand) and waits at most `timeout` in total; each domain's reply is
// one of: answered (ok or the agent's refusal), error reply, no agent, timed out.
// AgentReply::message carries the outcome's name for the unanswered ones ("no-agent",
// "timeout", "failed") so JSON readers need not parse error text. A libvirt call still
// running when the wait ends finishes in the background (libvirt bounds it); the
// destructor joins it.
//
// Threading: the orchestrator's one-caller-at-a-time pattern (guest_group.h). Borrows the
// connection and the domains' libvirt objects for its whole life.
#ifndef UCODE_VMM_ORCHESTRATOR_LIBVIRT_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_LIBVIRT_GROUP_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/libvirt/connection.h"
#include "vmm/libvirt/domain.h"
#include "vmm/orchestrator/domain_pauser.h"
#include "vmm/orchestrator/freeze_pauser.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

struct LibvirtGroupOptions {
  std::string host;  // sent to agents as "host" (default: this machine's hostname)
  std::string mode;  // sent to agents as "mode" ("strict" / "fast")
  PauseMode pause = PauseMode::kAuto;
  FreezeOptions freeze;
  // How long the agents' measuring thread may run after prepare (sent as "measure-ms");
  // zero: no measuring asked for.
  absl::Duration measure_window = absl::Seconds(30);
  // The operation ("operations/<id>") a suspended domain's park marker names
  // (vmm/libvirt/park_marker.h), so that a restarted ucoded resumes only what it proves it
  // paused; empty: no marker (front ends with no crash recovery).
  std::string operation;
};

// What the guest's agent measured over the pause (its complete reply's "blackout").
struct GuestBlackout {
  std::string clock;  // "CLOCK_MONOTONIC"
  absl::Duration pause_gap;     // the gap that spanned the pause
  absl::Duration baseline_gap;  // the largest gap before the pause
  absl::Duration max_gap;       // the largest gap seen
};

inline constexpr char kQemuStaleDetail[] =
    "QEMU keeps the revision it was started with; guest view stale until restart";

class LibvirtGuestGroup final : public GuestGroup {
 public:
  // Reads each domain's vCPU count. `conn` must outlive the group.
  static absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> Create(
      const libvirt::Connection& conn, std::vector<libvirt::Domain> domains,
      LibvirtGroupOptions options = {});
  ~LibvirtGuestGroup() override;

  LibvirtGuestGroup(const LibvirtGuestGroup&) = delete;
  LibvirtGuestGroup& operator=(const LibvirtGuestGroup&) = delete;

  [[nodiscard]] std::string kind() const override { return "libvirt"; }
  [[nodiscard]] std::vector<std::string> names() const override;
  [[nodiscard]] int total_vcpus() const override;

  [[nodiscard]] absl::Status Prepare(absl::Duration timeout) override;
  [[nodiscard]] absl::Status Park(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult SetRevision(uint32_t revision, absl::Duration deadline) override;
  [[nodiscard]] absl::Status Release(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult VerifyGuestViews(uint32_t revision,
                                                 absl::Duration timeout) override;
  [[nodiscard]] std::vector<VmReport> Report() override;
  [[nodiscard]] NotifyResult Notify(const AgentNotice& notice, absl::Duration timeout) override;
  [[nodiscard]] std::vector<std::string> Notes() const override { return notes_; }
  // The freezer guard's hold limit (strict mode refuses to park past it); none for suspend.
  [[nodiscard]] std::optional<absl::Duration> deadman() const override {
    return pauser_ ? pauser_->deadman() : std::nullopt;
  }

  // The backend in use ("freeze" / "suspend"); after Prepare, the final choice.
  [[nodiscard]] std::string pause_name() const { return pauser_->name(); }

  // The agent command Notify sends for `notice` (exposed for tests).
  [[nodiscard]] std::string AgentCommandJson(const AgentNotice& notice,
                                             absl::Duration timeout) const;

 private:
  struct Vm {  // domains_[i]'s
    int vcpus = 0;
    bool parked_by_us = false;
    bool paused_by_other = false;  // already paused when we came to park it
    absl::Time park_start, parked_at, release_start, released_at;
    VmViewOutcome view;
    std::optional<GuestBlackout> blackout;
    uint32_t deadman_releases = 0;
  };
  struct NotifyState;

  LibvirtGuestGroup(const libvirt::Connection& conn, LibvirtGroupOptions options)
      : conn_(conn), options_(std::move(options)) {}

  // Resumes the domains flagged parked_by_us; returns the failures ("name: why").
  std::vector<std::string> ResumeOurs(absl::Duration deadline);
  // The pauser's Prepare, with --pause auto's fallback to suspend.
  absl::Status PreparePauser();

  const libvirt::Connection& conn_;
  LibvirtGroupOptions options_;
  std::unique_ptr<DomainPauser> pauser_;
  bool pauser_prepared_ = false;
  std::vector<std::string> notes_;
  std::vector<libvirt::Domain> domains_;
  std::vector<Vm> vms_;
  std::vector<std::thread> agent_threads_;  // joined by the destructor
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_LIBVIRT_GROUP_H_
