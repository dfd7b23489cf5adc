#include "guest-agent/process_tree.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>

#include "host/base/unique_fd_core.h"

namespace ucode_agent {
namespace {

// ppid of `pid` from /proc/PID/stat (the field after the state, after the last ')': the
// command name may hold spaces and parentheses). -1 if gone.
pid_t ParentOf(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/stat";
  ucode::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  char buf[512];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  std::string stat(buf, static_cast<size_t>(n));
  size_t rp = stat.rfind(')');
  if (rp == std::string::npos || rp + 4 >= stat.size()) return -1;
  return static_cast<pid_t>(std::strtol(stat.c_str() + rp + 4, nullptr, 10));  // ") S ppid"
}

}  // namespace

bool BecomeSubreaper() { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0; }

std::vector<pid_t> Descendants() {
  std::vector<std::pair<pid_t, pid_t>> all;  // (pid, ppid)
  DIR* d = opendir("/proc");
  if (d == nullptr) return {};
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0) continue;
    pid_t ppid = ParentOf(static_cast<pid_t>(pid));
    if (ppid > 0) all.emplace_back(static_cast<pid_t>(pid), ppid);
  }
  closedir(d);
  std::vector<pid_t> out;
  std::vector<pid_t> frontier = {getpid()};
  while (!frontier.empty()) {
    pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto& [pid, ppid] : all) {
      if (ppid != parent) continue;
      out.push_back(pid);
      frontier.push_back(pid);
    }
  }
  return out;
}

int KillAllDescendants() {
  int killed = 0;
  // Bounded: each pass kills what it sees; what was forked meanwhile is a child of
  // something killed, re-parented to us, and seen by the next pass.
  for (int pass = 0; pass < 1000; ++pass) {
    std::vector<pid_t> pids = Descendants();
    if (pass == 0) killed = static_cast<int>(pids.size());
    bool alive = false;
    for (pid_t pid : pids) alive |= kill(pid, SIGKILL) == 0;
    // Reap our children (the killed ones, and descendants re-parented to us).
    int reaped = 0;
    while (waitpid(-1, nullptr, WNOHANG) > 0) ++reaped;
    if (pids.empty()) break;
    if (!alive && reaped == 0) usleep(1000);  // zombies whose parent is still exiting
  }
  return killed;
}

}  // namespace ucode_agent
