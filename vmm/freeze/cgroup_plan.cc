#include "vmm/freeze/cgroup_plan.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ucode::freeze {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo (the kernel's
// show_mountinfo() → seq_escape). Returns false on a malformed escape.
bool Unescape(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 3 >= in.size()) return false;
    int v = 0;
    for (size_t k = 1; k <= 3; ++k) {
      const char c = in[i + k];
      if (c < '0' || c > '7') return false;
      v = v * 8 + (c - '0');
    }
    out->push_back(static_cast<char>(v));
    i += 3;
  }
  return true;
}

// The path of cgroup `rel` (as /proc/PID/cgroup shows it, starting with '/') under `mount`.
std::string Join(absl::string_view mount, absl::string_view rel) {
  if (rel == "/") return std::string(mount);
  return absl::StrCat(mount, rel);
}

// A cgroup path from a cgroup file is trusted only if it is absolute and has no "." or
// ".." components (the kernel never writes them; a fake tree or a bug might).
bool CleanPath(absl::string_view rel) {
  if (!absl::StartsWith(rel, "/")) return false;
  for (absl::string_view part : absl::StrSplit(rel.substr(1), '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}

constexpr const char* kMechanismNames[] = {"cgroup2-in-place", "cgroup2-threaded",
                                           "cgroup1-freezer"};  // by Mechanism

}  // namespace

CgroupMounts ParseMountinfo(absl::string_view mountinfo) {
  CgroupMounts out;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    size_t dash = 0;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash < 6 || dash + 3 >= f.size()) continue;
    if (f[3] != "/") continue;  // a subtree of the hierarchy: not used (see header)
    std::string mount;
    if (!Unescape(f[4], &mount) || mount.empty() || mount[0] != '/') continue;
    const absl::string_view fstype = f[dash + 1];
    if (fstype == "cgroup2") {
      if (out.v2.empty()) out.v2 = mount;
    } else if (fstype == "cgroup") {
      for (absl::string_view opt : absl::StrSplit(f[dash + 3], ',')) {
        if (opt == "freezer" && out.v1_freezer.empty()) out.v1_freezer = mount;
      }
    }
  }
  return out;
}

ThreadCgroups ParseCgroupFile(absl::string_view text) {
  ThreadCgroups out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) continue;
    if (f[0] == "0" && f[1].empty()) {
      out.v2 = std::string(f[2]);
      continue;
    }
    for (absl::string_view c : absl::StrSplit(f[1], ',')) {
      if (c == "freezer") out.v1_freezer = std::string(f[2]);
    }
  }
  if (!CleanPath(out.v2)) out.v2.clear();
  if (!CleanPath(out.v1_freezer)) out.v1_freezer.clear();
  return out;
}

std::string FreezePlan::Describe() const {
  std::vector<std::string> parts;
  for (const FreezeUnit& u : units) {
    std::vector<std::string> v;
    for (int n : u.vcpus) v.push_back(absl::StrCat("vcpu", n));
    parts.push_back(absl::StrCat(absl::StrJoin(v, ","), ": ",
                                 kMechanismNames[static_cast<int>(u.mechanism)], " ", u.dir));
  }
  return absl::StrJoin(parts, "; ");
}

absl::StatusOr<FreezePlan> PlanFreeze(absl::string_view mountinfo,
                                      absl::Span<const ThreadInput> threads,
                                      absl::string_view own_name) {
  if (threads.empty()) return absl::InvalidArgumentError("PlanFreeze: no threads");
  if (own_name.empty() || absl::StrContains(own_name, '/') || own_name == "." ||
      own_name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("PlanFreeze: bad cgroup name '", own_name, "'"));
  }
  const CgroupMounts mounts = ParseMountinfo(mountinfo);
  std::vector<ThreadCgroups> cg;
  std::map<std::string, int> v2_members;  // cgroup2 path -> threads of the process in it
  for (const ThreadInput& t : threads) {
    cg.push_back(ParseCgroupFile(t.cgroup_file));
    if (!cg.back().v2.empty()) ++v2_members[cg.back().v2];
  }
  const std::string& process_v2 = cg[0].v2;

  FreezePlan plan;
  std::map<std::pair<Mechanism, std::string>, size_t> own_units;  // (mech, origin) -> unit
  std::vector<std::string> why_not;
  for (size_t i = 0; i < threads.size(); ++i) {
    const ThreadInput& t = threads[i];
    if (t.vcpu < 0) continue;
    const ThreadCgroups& c = cg[i];
    const std::string vcpu_leaf = absl::StrCat("/vcpu", t.vcpu);
    if (!mounts.v2.empty() && !c.v2.empty() && absl::EndsWith(c.v2, vcpu_leaf) &&
        v2_members[c.v2] == 1) {
      plan.units.push_back({.mechanism = Mechanism::kV2InPlace,
                            .dir = Join(mounts.v2, c.v2),
                            .tids = {t.tid},
                            .vcpus = {t.vcpu}});
      continue;
    }
    Mechanism m;
    std::string origin;
    if (!mounts.v2.empty() && !c.v2.empty() && c.v2 == process_v2) {
      m = Mechanism::kV2Own;
      origin = c.v2;
    } else if (!mounts.v1_freezer.empty() && !c.v1_freezer.empty()) {
      m = Mechanism::kV1Own;
      origin = c.v1_freezer;
    } else {
      const std::string v2_why =
          mounts.v2.empty()  ? "no cgroup2 mounted"
          : c.v2.empty()     ? "no cgroup2 line"
                             : absl::StrCat("cgroup2 ", c.v2, " is neither its own vcpu cgroup "
                                            "nor the process's cgroup");
      why_not.push_back(absl::StrCat(
          "vcpu", t.vcpu, " (tid ", t.tid, "): ", v2_why, ", ",
          mounts.v1_freezer.empty() ? "no cgroup-v1 freezer mounted" : "no freezer cgroup"));
      continue;
    }
    auto [it, inserted] = own_units.try_emplace({m, origin}, plan.units.size());
    if (inserted) {
      const std::string base = m == Mechanism::kV2Own ? mounts.v2 : mounts.v1_freezer;
      plan.units.push_back({.mechanism = m,
                            .dir = absl::StrCat(Join(base, origin), "/", own_name),
                            .origin = Join(base, origin)});
    }
    plan.units[it->second].tids.push_back(t.tid);
    plan.units[it->second].vcpus.push_back(t.vcpu);
  }
  if (!why_not.empty()) {
    return absl::UnimplementedError(
        absl::StrCat("no kernel freezer for ", absl::StrJoin(why_not, "; ")));
  }
  if (plan.units.empty()) return absl::InvalidArgumentError("PlanFreeze: no vCPU threads");
  return plan;
}

}  // namespace ucode::freeze
