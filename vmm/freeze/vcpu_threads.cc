#include "vmm/freeze/vcpu_threads.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "host/base/unique_fd.h"

namespace ucode::freeze {
namespace {

constexpr size_t kMaxProcFileBytes = 64 * 1024;

// A /proc file's content (at most kMaxProcFileBytes), or nullopt if it cannot be read
// (the task exited: the normal race with a live process).
std::optional<std::string> ReadProcFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[4096];
  while (out.size() < kMaxProcFileBytes) {
    const ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

// Numeric entries of a /proc directory.
absl::StatusOr<std::vector<pid_t>> NumericEntries(const std::string& dir) {
  std::unique_ptr<DIR, DirCloser> d(opendir(dir.c_str()));
  if (!d) return ErrnoStatus(errno, absl::StrCat("opendir ", dir));
  std::vector<pid_t> out;
  while (dirent* e = readdir(d.get())) {
    int id = 0;
    if (absl::SimpleAtoi(e->d_name, &id) && id > 0) out.push_back(id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool IsQemuBinary(absl::string_view argv0) {
  const size_t slash = argv0.rfind('/');
  const absl::string_view base = slash == absl::string_view::npos ? argv0 : argv0.substr(slash + 1);
  return absl::StartsWith(base, "qemu-system-") || base == "qemu-kvm";
}

}  // namespace

std::optional<int> VcpuIndexFromComm(absl::string_view comm) {
  absl::ConsumeSuffix(&comm, "\n");
  if (!absl::ConsumePrefix(&comm, "CPU ")) return std::nullopt;
  const size_t slash = comm.find('/');
  if (slash == absl::string_view::npos || slash == 0 || slash + 1 == comm.size()) {
    return std::nullopt;
  }
  int index = 0;
  if (!absl::SimpleAtoi(comm.substr(0, slash), &index) || index < 0) return std::nullopt;
  return index;
}

absl::StatusOr<std::vector<ThreadInput>> ReadVcpuThreads(absl::string_view proc_root, pid_t pid,
                                                         int expected_vcpus) {
  const std::string task_dir = absl::StrCat(proc_root, "/", pid, "/task");
  absl::StatusOr<std::vector<pid_t>> tids = NumericEntries(task_dir);
  if (!tids.ok()) return tids.status();
  std::vector<ThreadInput> out;
  std::vector<std::string> found;
  std::vector<int> per_index(std::max(expected_vcpus, 0), 0);
  bool index_out_of_range = false;
  for (pid_t tid : *tids) {
    const std::string base = absl::StrCat(task_dir, "/", tid);
    std::optional<std::string> comm = ReadProcFile(base + "/comm");
    std::optional<std::string> cgroup = ReadProcFile(base + "/cgroup");
    if (!comm || !cgroup) continue;  // exited meanwhile
    ThreadInput t{.tid = tid, .cgroup_file = *std::move(cgroup)};
    if (std::optional<int> index = VcpuIndexFromComm(*comm)) {
      t.vcpu = *index;
      found.push_back(absl::StrCat(tid, "=", absl::StripSuffix(*comm, "\n")));
      if (expected_vcpus < 0) {
        // any count
      } else if (*index < expected_vcpus) {
        ++per_index[*index];
      } else {
        index_out_of_range = true;
      }
    }
    // The main thread (tid == pid) first: its cgroup2 path is the process's.
    if (tid == pid) {
      out.insert(out.begin(), std::move(t));
    } else {
      out.push_back(std::move(t));
    }
  }
  if (out.empty() || out[0].tid != pid) {
    return absl::NotFoundError(absl::StrCat("process ", pid, " has no main thread in ", task_dir));
  }
  const bool each_once = std::all_of(per_index.begin(), per_index.end(), [](int n) { return n == 1; });
  if (expected_vcpus < 0) return out;  // recovery: whatever is there
  if (static_cast<int>(found.size()) != expected_vcpus || !each_once || index_out_of_range) {
    return absl::FailedPreconditionError(absl::StrCat(
        "process ", pid, ": expected ", expected_vcpus, " vCPU threads named \"CPU N/...\", found ",
        found.size(), found.empty() ? "" : absl::StrCat(" (", absl::StrJoin(found, ", "), ")"),
        "; QEMU names them only with -name ...,debug-threads=on"));
  }
  return out;
}

absl::StatusOr<pid_t> FindQemuByUuid(absl::string_view proc_root, absl::string_view uuid) {
  if (uuid.empty()) return absl::InvalidArgumentError("FindQemuByUuid: empty UUID");
  absl::StatusOr<std::vector<pid_t>> pids = NumericEntries(std::string(proc_root));
  if (!pids.ok()) return pids.status();
  std::vector<pid_t> matches;
  for (pid_t pid : *pids) {
    std::optional<std::string> cmdline = ReadProcFile(absl::StrCat(proc_root, "/", pid, "/cmdline"));
    if (!cmdline || cmdline->empty()) continue;
    std::vector<absl::string_view> argv = absl::StrSplit(*cmdline, '\0');
    if (!IsQemuBinary(argv[0])) continue;
    for (size_t i = 1; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-uuid" && absl::EqualsIgnoreCase(argv[i + 1], uuid)) {
        matches.push_back(pid);
        break;
      }
    }
  }
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no QEMU process with -uuid ", uuid, " in ", proc_root));
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat("several processes claim -uuid ", uuid, ": ",
                                                      absl::StrJoin(matches, ", ")));
  }
  return matches[0];
}

}  // namespace ucode::freeze
