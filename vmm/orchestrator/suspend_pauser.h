// SuspendPauser: virDomainSuspend / virDomainResume of every domain at once, each
// acknowledged by its lifecycle event (libvirt::Connection::SuspendAll / ResumeAll). A
// domain already paused is reported paused_by_other and never resumed by us. Each domain
// it suspends carries the operation's park marker (vmm/libvirt/park_marker.h) from just
// before virDomainSuspend until just after virDomainResume.
#ifndef UCODE_VMM_ORCHESTRATOR_SUSPEND_PAUSER_H_
#define UCODE_VMM_ORCHESTRATOR_SUSPEND_PAUSER_H_

#include "vmm/libvirt/connection.h"
#include "vmm/orchestrator/domain_pauser.h"

namespace ucode::orchestrator {

class SuspendPauser final : public DomainPauser {
 public:
  // `conn` must outlive the pauser.
  // `operation` is what the park markers name; empty: no markers.
  SuspendPauser(const libvirt::Connection& conn, std::string operation)
      : conn_(conn), operation_(std::move(operation)) {}

  [[nodiscard]] std::string name() const override { return "suspend"; }
  [[nodiscard]] absl::Status Prepare(absl::Span<const libvirt::Domain>,
                                     absl::Span<const int>) override {
    return absl::OkStatus();
  }
  [[nodiscard]] std::vector<PauseOutcome> Pause(absl::Span<const libvirt::Domain> domains,
                                                absl::Duration deadline) override;
  [[nodiscard]] std::vector<PauseOutcome> Resume(absl::Span<const libvirt::Domain> domains,
                                                 const std::vector<bool>& which,
                                                 absl::Duration deadline) override;

 private:
  const libvirt::Connection& conn_;
  const std::string operation_;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_SUSPEND_PAUSER_H_
