// The libvirt domains an update holds (`ucodectl apply --domain/--all`; ucoded's
// `--libvirt_uri`, `--libvirt_domains`): one connection, the selection re-read at each use
// (so `all` means the domains running when an apply starts), how they are held (freeze or
// suspend), a fresh orchestrator::LibvirtGuestGroup per apply, and the recovery of domains
// a dead daemon left paused.
//
// Why recovery is needed: a ucode-vmm VM releases itself when its coordinator dies
// (dead-man deadline); a libvirt domain stays paused forever. So the runner journals the
// names of the domains it is about to suspend with BeginStep(STEP_PARKED), and the next
// daemon resumes those of them that are still paused on a user request
// (VIR_DOMAIN_PAUSED_USER, what virDomainSuspend leaves) and still carry the park marker
// naming that operation (vmm/libvirt/park_marker.h). The journal alone is not proof: if
// the row recording the release was lost (disk full) and a user has paused the domain
// since, only the missing marker tells their pause from ours. A domain paused for another
// reason (I/O error, migration, ...) or without our marker is left alone and named.
// Frozen domains (the default pause, vmm/freeze) are thawed by their guard process when
// the daemon dies; the journal's names also let the next daemon thaw any vCPU cgroup
// still frozen if the guard died too.
//
// Threads: every method may be called from any thread (libvirt::Connection is
// thread-safe); the daemon calls Group/ResumePaused from its operation thread and
// Describe from gRPC threads.
#ifndef UCODE_VMM_INVENTORY_LIBVIRT_GUESTS_H_
#define UCODE_VMM_INVENTORY_LIBVIRT_GUESTS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/ucode/v1/ucoded.pb.h"
#include "vmm/libvirt/connection.h"
#include "vmm/orchestrator/libvirt_group.h"

namespace ucode::inventory {

// `NAME,...` (names or UUIDs, as virsh takes them) or `all` (every running domain).
absl::StatusOr<libvirt::DomainSelector> ParseLibvirtDomains(absl::string_view flag);

// One apply's libvirt group and the domains it is about to suspend (those not already
// paused: a domain someone else paused is never resumed by us).
struct LibvirtApplyGroup {
  std::unique_ptr<orchestrator::LibvirtGuestGroup> group;
  std::vector<std::string> to_suspend;
};

// How the domains are held: PauseMode, and how long a frozen domain stays frozen if we
// die (its freeze guard thaws it then, like a VMM's own dead-man).
struct LibvirtHold {
  orchestrator::PauseMode pause = orchestrator::PauseMode::kAuto;
  absl::Duration deadman = absl::Seconds(2);
};

class LibvirtGuests {
 public:
  // Opens `uri` and checks that the selection resolves (every named domain exists).
  static absl::StatusOr<std::unique_ptr<LibvirtGuests>> Open(absl::string_view uri,
                                                             libvirt::DomainSelector selector,
                                                             LibvirtHold hold = {});
  LibvirtGuests(const LibvirtGuests&) = delete;
  LibvirtGuests& operator=(const LibvirtGuests&) = delete;

  // The selected domains' names, now.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> Names() const;

  // ListGuests entries: kind "libvirt", never guest_view_updatable (QEMU keeps the
  // revision it started with).
  [[nodiscard]] absl::StatusOr<std::vector<ucode::v1::Guest>> Describe() const;

  // The group over the selection, narrowed to `only` when it is not empty (each a selected
  // domain's name; the caller checked), for an update in `mode` ("strict" / "fast", sent
  // to the agents). `operation` is what a suspended domain's park marker names (empty:
  // no marker). `group` is null when nothing is selected.
  [[nodiscard]] absl::StatusOr<LibvirtApplyGroup> Group(const std::vector<std::string>& only,
                                                        const std::string& mode,
                                                        const std::string& operation) const;

  // Resumes those of `names` that are paused on a user request and carry the park marker
  // of `operation`, waiting up to `deadline` for each acknowledgement, and removes the
  // marker from those it resumed. Returns a one-line account; an error (with the account)
  // when a journaled domain could not be checked or resumed.
  [[nodiscard]] absl::StatusOr<std::string> ResumePaused(const std::vector<std::string>& names,
                                                         const std::string& operation,
                                                         absl::Duration deadline) const;

 private:
  LibvirtGuests(std::unique_ptr<libvirt::Connection> conn, libvirt::DomainSelector selector,
                LibvirtHold hold)
      : conn_(std::move(conn)), selector_(std::move(selector)), hold_(hold) {}

  std::unique_ptr<libvirt::Connection> conn_;
  const libvirt::DomainSelector selector_;
  const LibvirtHold hold_;
};

// After a crash: `names`, which `operation` journaled as about to pause, are resumed
// (LibvirtGuests::ResumePaused) if it was still holding them when it died, i.e. it had
// begun STEP_PARKED and not finished STEP_RELEASED. `guests` is null when this ucoded has
// no libvirt connection. Returns a one-line account, like ResumePaused.
[[nodiscard]] absl::StatusOr<std::string> ResumeAfterCrash(const LibvirtGuests* guests,
                                                           const std::vector<std::string>& names,
                                                           const std::string& operation,
                                                           ucode::v1::Step interrupted_step,
                                                           ucode::v1::Step last_step);

}  // namespace ucode::inventory

#endif  // UCODE_VMM_INVENTORY_LIBVIRT_GUESTS_H_
