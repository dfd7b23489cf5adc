#include "vmm/orchestrator/coordinator_group.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"

namespace ucode::orchestrator {
namespace {

// A VM's view from its vCPUs that do not run with the view handed over (none: kSet).
VmViewOutcome Outcome(const std::string& name, const std::vector<rendezvous::VcpuViewMiss>& misses,
                      absl::string_view prefix = "") {
  if (misses.empty()) return {.name = name, .status = ViewStatus::kSet};
  std::vector<std::string> what;
  ViewFailure failure = ViewFailure::kNotSet;
  for (const rendezvous::VcpuViewMiss& m : misses) {
    what.push_back(m.Describe());
    if (m.why == rendezvous::ViewMiss::kDeadmanReleased) failure = ViewFailure::kMissedRelease;
  }
  return {.name = name,
          .status = ViewStatus::kFailed,
          .detail = absl::StrCat(prefix, absl::StrJoin(what, ", ")),
          .failure = failure};
}

}  // namespace

CoordinatorGuestGroup::CoordinatorGuestGroup(rendezvous::Coordinator& coordinator,
                                             std::vector<rendezvous::VmSpec> specs)
    : coordinator_(coordinator), specs_(std::move(specs)) {
  for (const rendezvous::VmSpec& s : specs_) views_.push_back({.name = s.name});
}

std::vector<std::string> CoordinatorGuestGroup::names() const {
  std::vector<std::string> out;
  for (const rendezvous::VmSpec& s : specs_) out.push_back(s.name);
  return out;
}

absl::Status CoordinatorGuestGroup::Prepare(absl::Duration timeout) {
  RETURN_IF_ERROR(coordinator_.WaitGuestsRunning(timeout));
  // From here to the park, each guest's largest gap is the baseline of its blackout.
  return coordinator_.OpenGapWindows();
}

absl::Status CoordinatorGuestGroup::Park(absl::Duration deadline) {
  pending_revision_.reset();
  return coordinator_.Park(deadline);
}

// With a revision from SetRevision(), the release hands it to every vCPU (one wake-up per
// vCPU). The release itself succeeding is what this returns; a view that was not set is
// recorded per VM (kFailed) and fails Result(), so VerifyGuestViews() reports it. A VM
// with a vCPU its dead-man had released is kMissedRelease: the orchestrator parks it again
// (ViewAfterRelease()).
absl::Status CoordinatorGuestGroup::Release(absl::Duration deadline) {
  if (!pending_revision_) return coordinator_.Release(deadline);
  const uint32_t revision = *pending_revision_;
  pending_revision_.reset();
  absl::Status released = coordinator_.ReleaseWithRevision(revision, deadline);
  const uint64_t msr = uint64_t{revision} << 32;
  for (size_t i = 0; i < specs_.size(); ++i) {
    views_[i] = Outcome(specs_[i].name, coordinator_.ViewNotSet(i, msr));
  }
  // INTERNAL: every vCPU released, some view not set (recorded above). Anything else is
  // the release's own failure (a vCPU still parked).
  return released.code() == absl::StatusCode::kInternal ? absl::OkStatus() : released;
}

GuestViewResult CoordinatorGuestGroup::Result() const {
  GuestViewResult r;
  r.vms = views_;
  std::vector<std::string> failed;
  for (const VmViewOutcome& v : views_) {
    if (v.status == ViewStatus::kFailed) failed.push_back(absl::StrCat(v.name, ": ", v.detail));
  }
  if (!failed.empty()) {
    r.status = absl::InternalError(absl::StrCat("guest view: ", absl::StrJoin(failed, "; ")));
  }
  return r;
}

// Nothing is written here: the revision goes to each vCPU with the release (Release()),
// which is when the per-VM outcome becomes known. Until then no VM has an outcome: an
// earlier release's is not this one's (a second park after a dead-man release would
// otherwise fail here on the first release's misses).
GuestViewResult CoordinatorGuestGroup::SetRevision(uint32_t revision, absl::Duration) {
  pending_revision_ = revision;
  for (VmViewOutcome& v : views_) v = {.name = v.name};
  return Result();
}

GuestViewResult CoordinatorGuestGroup::VerifyGuestViews(uint32_t revision,
                                                        absl::Duration timeout) {
  const uint64_t msr = uint64_t{revision} << 32;
  const absl::Time end = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<std::vector<rendezvous::VmResult>> views = coordinator_.ReadGuestViews();
    if (!views.ok()) {
      GuestViewResult r = Result();
      r.status = views.status();
      return r;
    }
    bool waiting = false;
    const bool last_try = absl::Now() >= end;
    for (size_t i = 0; i < views->size() && i < specs_.size(); ++i) {
      VmViewOutcome& out = views_[i];
      if (out.status == ViewStatus::kFailed || out.status == ViewStatus::kVerified) continue;
      std::vector<rendezvous::VcpuViewMiss> bad = coordinator_.ViewNotSet(i, msr);
      if (!bad.empty()) {
        out = Outcome(specs_[i].name, bad, "VMM read-back: ");
        continue;
      }
      if (specs_[i].program == "halt") {  // never re-reads MSR 0x8B; the read-back stands
        out = {.name = specs_[i].name, .status = ViewStatus::kSet,
               .detail = "guest halted: VMM read-back only"};
        continue;
      }
      std::vector<std::string> stale;
      for (const rendezvous::VcpuView& v : (*views)[i].vcpus) {
        if (v.rev_msr != msr) {
          stale.push_back(absl::StrCat("vcpu ", v.index, " reads 0x", absl::Hex(v.rev_msr >> 32)));
        }
      }
      if (stale.empty()) {
        out = {.name = specs_[i].name, .status = ViewStatus::kVerified, .detail = ""};
      } else if (last_try) {
        out = {.name = specs_[i].name, .status = ViewStatus::kFailed,
               .detail = absl::StrCat("guest not reading 0x", absl::Hex(revision), " after ",
                                      absl::FormatDuration(timeout), ": ",
                                      absl::StrJoin(stale, ", ")),
               .failure = ViewFailure::kNotSet};
      } else {
        waiting = true;
      }
    }
    if (!waiting) return Result();
    usleep(1000);
  }
}

std::vector<VmReport> CoordinatorGuestGroup::Report() {
  std::vector<VmReport> out;
  absl::StatusOr<std::vector<rendezvous::VmResult>> views = coordinator_.ReadGuestViews();
  for (size_t i = 0; i < specs_.size(); ++i) {
    VmReport r;
    r.kind = kind();
    r.name = specs_[i].name;
    r.vcpus = specs_[i].vcpus;
    r.view = views_[i].status;
    r.view_detail = views_[i].detail;
    if (views.ok() && i < views->size()) {
      const rendezvous::VmResult& v = (*views)[i];
      r.park_latency = v.park_latency;
      r.time_parked = v.time_parked;
      r.guest_blackout = v.guest_blackout;
      r.baseline_max_gap = v.baseline_max_gap;
      r.guest_measured = specs_[i].program != "halt";
      r.revision_before = v.revision_before;
      r.revision_after = v.revision_after;
      for (const rendezvous::VcpuView& c : v.vcpus) {
        r.backwards += c.backwards;
        r.deadman_releases += c.deadman_releases;
      }
    } else if (!views.ok() && r.view_detail.empty()) {
      r.view_detail = absl::StrCat("no measurements: ", views.status().message());
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ucode::orchestrator
