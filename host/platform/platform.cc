#include "host/platform/platform.h"

#include <algorithm>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "host/base/status_macros.h"

namespace ucode::platform {

std::vector<int> Topology::CorePrimaries() const {
  std::vector<int> out;
  for (const LogicalCpu& c : cpus) {
    if (c.online && c.thread == 0) out.push_back(c.id);
  }
  return out;
}

std::vector<int> Topology::PackageLeaders() const {
  std::set<int> seen;
  std::vector<std::pair<int, int>> leaders;  // (package, cpu)
  for (const LogicalCpu& c : cpus) {
    if (!c.online || c.thread != 0 || c.package < 0) continue;
    if (seen.insert(c.package).second) leaders.emplace_back(c.package, c.id);
  }
  std::sort(leaders.begin(), leaders.end());
  std::vector<int> out;
  for (const auto& [pkg, cpu] : leaders) out.push_back(cpu);
  return out;
}

int Topology::OnlineCount() const {
  int n = 0;
  for (const LogicalCpu& c : cpus) n += c.online ? 1 : 0;
  return n;
}

int Topology::PrimaryOf(int cpu) const {
  const LogicalCpu* self = Find(cpu);
  if (self == nullptr || self->package < 0) return -1;
  for (const LogicalCpu& c : cpus) {
    if (c.online && c.thread == 0 && c.package == self->package && c.core == self->core) {
      return c.id;
    }
  }
  return -1;
}

const LogicalCpu* Topology::Find(int cpu) const {
  for (const LogicalCpu& c : cpus) {
    if (c.id == cpu) return &c;
  }
  return nullptr;
}

const char* CpuOutcomeName(CpuOutcome outcome) {
  switch (outcome) {
    case CpuOutcome::kUpdated: return "updated";
    case CpuOutcome::kSibling: return "sibling";
    case CpuOutcome::kAlreadyCurrent: return "already-current";
    case CpuOutcome::kTimedOut: return "timed-out";
    case CpuOutcome::kFailed: return "failed";
    case CpuOutcome::kOffline: return "offline";
  }
  return "unknown";
}

bool KernelReleaseAtLeast(absl::string_view release, int major, int minor) {
  std::vector<absl::string_view> parts = absl::StrSplit(release, absl::ByAnyChar(".-"));
  int have_major = 0, have_minor = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &have_major) ||
      !absl::SimpleAtoi(parts[1], &have_minor)) {
    return false;
  }
  return have_major > major || (have_major == major && have_minor >= minor);
}

absl::StatusOr<uint32_t> ReadRevision(Platform& platform, int cpu) {
  ASSIGN_OR_RETURN(microcode::CpuIdentity id, platform.Identity(cpu));
  return id.current_revision;
}

}  // namespace ucode::platform
