#include "vmm/orchestrator/guest_group.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vmm/orchestrator/fan_out.h"

namespace ucode::orchestrator {

const char* ViewStatusName(ViewStatus status) {
  switch (status) {
    case ViewStatus::kUnchanged: return "unchanged";
    case ViewStatus::kSet: return "set";
    case ViewStatus::kVerified: return "verified";
    case ViewStatus::kStaleUntilRestart: return "stale until restart";
    case ViewStatus::kFailed: return "failed";
  }
  return "?";
}

const char* AgentPhaseName(AgentNotice::Phase phase) {
  return phase == AgentNotice::Phase::kPrepare ? "prepare" : "complete";
}

namespace {

// "kind [a, b]: message; ..." for every failed status; empty if all OK.
std::string Failures(absl::Span<GuestGroup* const> groups, const std::vector<absl::Status>& st) {
  std::vector<std::string> out;
  for (size_t i = 0; i < st.size(); ++i) {
    if (st[i].ok()) continue;
    out.push_back(absl::StrCat(groups[i]->kind(), " [", absl::StrJoin(groups[i]->names(), ", "),
                               "]: ", st[i].message()));
  }
  return absl::StrJoin(out, "; ");
}

}  // namespace

std::vector<absl::Status> FanOut(absl::Span<GuestGroup* const> groups,
                                 const std::function<absl::Status(GuestGroup&, size_t)>& fn) {
  std::vector<absl::Status> out(groups.size());
  // Each group step carries its own deadline (the GuestGroup calls take a duration).
  FanOut(
      groups.size(), absl::InfiniteDuration(),
      [&](size_t i) { return absl::StrCat("group-", groups[i]->kind()); },
      [&](const FanOutItem& item) { out[item.index] = fn(*groups[item.index], item.index); });
  return out;
}

absl::Status ParkAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline) {
  std::vector<absl::Status> st = FanOut(groups, [&](GuestGroup& g, size_t) { return g.Park(deadline); });
  std::string failed = Failures(groups, st);
  if (failed.empty()) return absl::OkStatus();
  // A failing group released itself; the others parked and must be let go too.
  absl::Status released = ReleaseAll(groups, absl::Milliseconds(500));
  return absl::AbortedError(absl::StrCat(
      "park failed: ", failed, "; released every VM",
      released.ok() ? "" : absl::StrCat(" (release: ", released.message(), ")")));
}

absl::Status ReleaseAll(absl::Span<GuestGroup* const> groups, absl::Duration deadline) {
  std::vector<absl::Status> st =
      FanOut(groups, [&](GuestGroup& g, size_t) { return g.Release(deadline); });
  std::string failed = Failures(groups, st);
  if (failed.empty()) return absl::OkStatus();
  return absl::DeadlineExceededError(absl::StrCat("release: ", failed));
}

absl::Status SetRevisionAll(absl::Span<GuestGroup* const> groups, uint32_t revision,
                            absl::Duration deadline, std::vector<GuestViewResult>* results) {
  results->assign(groups.size(), {});
  std::vector<absl::Status> st = FanOut(groups, [&](GuestGroup& g, size_t i) {
    (*results)[i] = g.SetRevision(revision, deadline);
    return (*results)[i].status;
  });
  std::string failed = Failures(groups, st);
  if (failed.empty()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("set guest view: ", failed));
}

}  // namespace ucode::orchestrator
