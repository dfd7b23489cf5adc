#include "vmm/orchestrator/suspend_pauser.h"

#include "absl/strings/str_cat.h"
#include "vmm/libvirt/park_marker.h"

namespace ucode::orchestrator {
namespace {

PauseOutcome FromOpResult(const libvirt::DomainOpResult& r) {
  return {.status = r.status,
          .paused_by_other = r.already_in_state,
          .latency = r.ack_latency > absl::ZeroDuration() ? r.ack_latency : r.call_latency};
}

// The domains `which` picks, as references of their own for ResumeAll.
absl::StatusOr<std::vector<libvirt::Domain>> Refs(absl::Span<const libvirt::Domain> domains,
                                                  const std::vector<bool>& which) {
  std::vector<libvirt::Domain> out;
  for (size_t i = 0; i < domains.size(); ++i) {
    if (!which[i]) continue;
    absl::StatusOr<libvirt::Domain> d = domains[i].Duplicate();
    if (!d.ok()) return d.status();
    out.push_back(*std::move(d));
  }
  return out;
}

// Which domains carry our marker, and which were already paused when we looked.
struct Marks {
  absl::Status status;
  std::vector<bool> marked;
  std::vector<bool> paused;
};

// Marks the domains not already paused (a paused one is someone else's: marking it would
// let recovery resume their pause). All or none: on an error the marks set are removed
// and `status` says why; nothing may then be suspended.
Marks MarkRunning(absl::Span<const libvirt::Domain> domains, absl::string_view operation) {
  Marks m{.marked = std::vector<bool>(domains.size()), .paused = std::vector<bool>(domains.size())};
  if (operation.empty()) return m;
  for (size_t i = 0; i < domains.size(); ++i) {
    // An unreadable state counts as running: SuspendAll will try it, and may pause it.
    absl::StatusOr<int> state = domains[i].State();
    m.paused[i] = state.ok() && *state == libvirt::kDomainPaused;
  }
  for (size_t i = 0; i < domains.size() && m.status.ok(); ++i) {
    if (m.paused[i]) continue;
    m.status = libvirt::SetParkMarker(domains[i], operation);
    m.marked[i] = m.status.ok();
  }
  if (m.status.ok()) return m;
  for (size_t i = 0; i < domains.size(); ++i) {
    if (m.marked[i]) libvirt::ClearParkMarker(domains[i]).IgnoreError();
  }
  return m;
}

// Removes a marker that no longer proves anything; a failure becomes the outcome's
// warning (the domain's hold state is what it is either way).
void Unmark(const libvirt::Domain& d, PauseOutcome& out) {
  absl::Status s = libvirt::ClearParkMarker(d);
  if (!s.ok()) out.warning = absl::StrCat("park marker left on ", d.name(), ": ", s.message());
}

}  // namespace

std::vector<PauseOutcome> SuspendPauser::Pause(absl::Span<const libvirt::Domain> domains,
                                               absl::Duration deadline) {
  std::vector<PauseOutcome> out(domains.size());
  const Marks marks = MarkRunning(domains, operation_);
  if (!marks.status.ok()) {
    // The group resumes every domain that failed to park (a failed suspend may have
    // paused it): flag those someone else paused so it leaves them alone.
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].paused_by_other = marks.paused[i];
      if (!marks.paused[i]) out[i].status = marks.status;
    }
    return out;
  }
  std::vector<libvirt::DomainOpResult> results = conn_.SuspendAll(domains, deadline);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = FromOpResult(results[i]);
    // Paused by someone between our look and our call: not ours. A failed suspend keeps
    // its marker: it may still have paused the domain, which the group then resumes.
    if (marks.marked[i] && out[i].paused_by_other) Unmark(domains[i], out[i]);
  }
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
    if (!which[i]) continue;
    out[i] = FromOpResult(results[k++]);
    if (out[i].status.ok() && !operation_.empty()) Unmark(domains[i], out[i]);
  }
  return out;
}

}  // namespace ucode::orchestrator
