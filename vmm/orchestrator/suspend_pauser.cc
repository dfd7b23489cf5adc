#include "vmm/orchestrator/suspend_pauser.h"

#include "absl/strings/str_cat.h"

namespace ucode::orchestrator {
namespace {

PauseOutcome FromOpResult(const libvirt::DomainOpResult& r) {
  return {.status = r.status,
          .paused_by_other = r.already_in_state,
          .latency = r.ack_latency > absl::ZeroDuration() ? r.ack_latency : r.call_latency};
}

// SuspendAll/ResumeAll take owned references; `which` picks (all when empty).
absl::StatusOr<std::vector<libvirt::Domain>> Refs(absl::Span<const libvirt::Domain> domains,
                                                  const std::vector<bool>& which) {
  std::vector<libvirt::Domain> out;
  for (size_t i = 0; i < domains.size(); ++i) {
    if (!which.empty() && !which[i]) continue;
    absl::StatusOr<libvirt::Domain> d = domains[i].Duplicate();
    if (!d.ok()) return d.status();
    out.push_back(*std::move(d));
  }
  return out;
}

}  // namespace

std::vector<PauseOutcome> SuspendPauser::Pause(absl::Span<const libvirt::Domain> domains,
                                               absl::Duration deadline) {
  std::vector<PauseOutcome> out(domains.size());
  absl::StatusOr<std::vector<libvirt::Domain>> refs = Refs(domains, {});
  if (!refs.ok()) {
    for (PauseOutcome& o : out) o.status = refs.status();
    return out;
  }
  std::vector<libvirt::DomainOpResult> results = conn_.SuspendAll(*refs, deadline);
  for (size_t i = 0; i < out.size(); ++i) out[i] = FromOpResult(results[i]);
  return out;
}

std::vector<PauseOutcome> SuspendPauser::Resume(absl::Span<const libvirt::Domain> domains,
                                                const std::vector<bool>& which,
                                                absl::Duration deadline) {
  std::vector<PauseOutcome> out(domains.size());
  absl::StatusOr<std::vector<libvirt::Domain>> refs = Refs(domains, which);
  if (!refs.ok()) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (which[i]) out[i].status = refs.status();
    }
    return out;
  }
  std::vector<libvirt::DomainOpResult> results = conn_.ResumeAll(*refs, deadline);
  size_t k = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (which[i]) out[i] = FromOpResult(results[k++]);
  }
  return out;
}

}  // namespace ucode::orchestrator
