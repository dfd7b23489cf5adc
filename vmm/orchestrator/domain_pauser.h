// How a LibvirtGuestGroup holds its domains' vCPUs out of guest mode: one small interface,
// two backends.
//  - SuspendPauser: virDomainSuspend / virDomainResume through libvirt (QEMU's `stop` /
//    `cont`): milliseconds per domain, and libvirt raises SUSPENDED / RESUMED events.
//  - FreezePauser: the kernel's cgroup freezer on QEMU's vCPU threads (vmm/freeze): tens
//    of microseconds, forced, invisible to libvirt (the domain stays "running").
// The group keeps the all-or-nothing rule and the per-VM bookkeeping; a backend only
// pauses and resumes what it is given, at once, and says per domain what happened.
//
// Threading: the group's caller thread (guest_group.h), one call at a time.
#ifndef UCODE_VMM_ORCHESTRATOR_DOMAIN_PAUSER_H_
#define UCODE_VMM_ORCHESTRATOR_DOMAIN_PAUSER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vmm/libvirt/domain.h"

namespace ucode::orchestrator {

// --pause: freeze where the kernel offers a freezer, else suspend (kAuto); or either one.
enum class PauseMode { kAuto, kFreeze, kSuspend };
[[nodiscard]] absl::Status ParsePauseMode(absl::string_view text, PauseMode* mode);
const char* PauseModeName(PauseMode mode);

struct PauseOutcome {
  absl::Status status;
  bool paused_by_other = false;  // was already held by someone else: left alone
  absl::Duration latency;        // from the call's start to this domain held / released
  std::string warning;           // held / released, but something beside it failed (report note)
};

class DomainPauser {
 public:
  virtual ~DomainPauser() = default;

  // "suspend" or "freeze", for reports.
  [[nodiscard]] virtual std::string name() const = 0;

  // Before the operation, with the domains' vCPU counts: find what Pause will need.
  // Nothing is paused. FAILED_PRECONDITION names what is wrong with which domain.
  [[nodiscard]] virtual absl::Status Prepare(absl::Span<const libvirt::Domain> domains,
                                             absl::Span<const int> vcpus) = 0;

  // Holds every domain at once, within `deadline`; one outcome per domain.
  [[nodiscard]] virtual std::vector<PauseOutcome> Pause(absl::Span<const libvirt::Domain> domains,
                                                        absl::Duration deadline) = 0;

  // Releases the domains with which[i] set; one outcome per domain (unset: OK).
  [[nodiscard]] virtual std::vector<PauseOutcome> Resume(absl::Span<const libvirt::Domain> domains,
                                                         const std::vector<bool>& which,
                                                         absl::Duration deadline) = 0;

  // Holds the backend's own dead-man ended since the last call (freeze guard).
  [[nodiscard]] virtual int TakeDeadmanReleases() { return 0; }

  // How long a hold lasts before the backend's own dead-man ends it; nullopt when only
  // Resume() ends it (suspend).
  [[nodiscard]] virtual std::optional<absl::Duration> deadman() const { return std::nullopt; }

  // One line on how the domains are held ("cgroup2-in-place: web1 vcpu0,vcpu1; ...").
  [[nodiscard]] virtual std::string Describe() const { return name(); }
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_DOMAIN_PAUSER_H_
