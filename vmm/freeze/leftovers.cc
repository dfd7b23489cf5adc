#include "vmm/freeze/leftovers.h"

#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/unique_fd.h"
#include "vmm/freeze/cgroup_plan.h"
#include "vmm/freeze/vcpu_threads.h"

namespace ucode::freeze {
namespace {

std::string LastComponent(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == absl::string_view::npos ? path : path.substr(slash + 1));
}

std::string ParentOf(absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string ReadSmall(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return "";
  char buf[256];
  const ssize_t n = read(fd.get(), buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

absl::Status Write(const std::string& path, absl::string_view value) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  if (write(fd.get(), value.data(), value.size()) < 0) {
    return ErrnoStatus(errno, absl::StrCat("write '", value, "' to ", path));
  }
  return absl::OkStatus();
}

std::string Under(const std::string& mount, const std::string& rel) {
  return rel == "/" ? mount : mount + rel;
}

}  // namespace

absl::StatusOr<int> ThawLeftovers(absl::string_view proc_root, absl::string_view mountinfo,
                                  pid_t pid) {
  const CgroupMounts mounts = ParseMountinfo(mountinfo);
  // Any number of vCPU threads: this is recovery, not a freeze.
  absl::StatusOr<std::vector<ThreadInput>> all = ReadVcpuThreads(proc_root, pid, -1);
  if (!all.ok()) return all.status();
  int thawed = 0;
  std::set<std::string> done;
  std::vector<std::string> failed;
  for (const ThreadInput& t : *all) {
    if (t.vcpu < 0) continue;
    const ThreadCgroups c = ParseCgroupFile(t.cgroup_file);
    struct Candidate {
      std::string mount, rel;
      bool v2;
    };
    std::vector<Candidate> cands;
    if (!mounts.v2.empty() && !c.v2.empty()) cands.push_back({mounts.v2, c.v2, true});
    if (!mounts.v1_freezer.empty() && !c.v1_freezer.empty()) {
      cands.push_back({mounts.v1_freezer, c.v1_freezer, false});
    }
    for (const Candidate& k : cands) {
      const std::string leaf = LastComponent(k.rel);
      const bool ours = absl::StartsWith(leaf, kOwnCgroupPrefix);
      const bool vcpu = k.v2 && leaf == absl::StrCat("vcpu", t.vcpu);
      if (!ours && !vcpu) continue;
      const std::string dir = Under(k.mount, k.rel);
      const std::string control = dir + (k.v2 ? "/cgroup.freeze" : "/freezer.state");
      const std::string state = ReadSmall(control);
      const bool frozen = k.v2 ? absl::StartsWith(state, "1") : !absl::StartsWith(state, "THAWED");
      if (frozen && done.insert(control).second) {
        absl::Status s = Write(control, k.v2 ? "0" : "THAWED");
        if (s.ok()) {
          ++thawed;
        } else {
          failed.push_back(std::string(s.message()));
        }
      }
      if (ours) {
        const std::string back = Under(k.mount, ParentOf(k.rel));
        absl::Status s = Write(back + (k.v2 ? "/cgroup.threads" : "/tasks"), absl::StrCat(t.tid));
        if (!s.ok()) failed.push_back(std::string(s.message()));
        rmdir(dir.c_str());  // succeeds once the last thread left it
      }
    }
  }
  if (!failed.empty()) {
    return absl::InternalError(absl::StrCat("QEMU pid ", pid, ": thawed ", thawed,
                                            " cgroup(s) but: ", absl::StrJoin(failed, "; ")));
  }
  return thawed;
}

}  // namespace ucode::freeze
