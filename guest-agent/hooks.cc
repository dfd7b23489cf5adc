#include "guest-agent/hooks.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "guest-agent/process_tree.h"
#include "host/base/unique_fd_core.h"

namespace ucode_agent {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kHookPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool ValidHookName(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Why root must not run what `st` describes (empty: it may). `what` is "hook" or
// "hook directory"; a hook must be a regular file, the directory a directory.
std::string Untrusted(const struct stat& st, const char* what, bool directory) {
  if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return std::string(what) + (S_ISLNK(st.st_mode) ? " is a symlink" : " is not a regular file");
  }
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return std::string(what) + " owned by uid " + std::to_string(st.st_uid) + ", not root";
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return std::string(what) + " mode " + mode + " is writable by group or others";
  }
  return "";
}

// Everything the child needs is built before fork(): between fork and execve
// the child only makes async-signal-safe calls.
struct ExecPlan {
  std::string path;
  std::vector<std::string> env;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

[[noreturn]] void ChildExec(const ExecPlan& plan, int devnull, int out_fd) {
  // Own process group, so a timeout kills everything the hook started.
  setpgid(0, 0);
  // The agent blocks its signals for signalfd and ignores SIGPIPE; a hook
  // starts with a default disposition and an empty mask.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (dup2(devnull, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
      dup2(out_fd, STDERR_FILENO) < 0) {
    _exit(126);
  }
  execve(plan.path.c_str(), plan.argv.data(), plan.envp.data());
  static const char kMsg[] = "ucode-agent: execve failed\n";
  ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  (void)ignored;
  _exit(127);
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

// Reads what is available from `fd` into `output` (up to `max` kept, the rest
// drained and dropped). Returns false at EOF or error.
bool Drain(int fd, std::string* output, size_t max) {
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      size_t keep = std::min(static_cast<size_t>(n), max - std::min(max, output->size()));
      output->append(buf, keep);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

HookOutcome RunOne(const ExecPlan& plan, const std::string& name, Clock::time_point deadline,
                   const HookOptions& options) {
  const size_t max_output = options.max_output_bytes;
  HookOutcome outcome;
  outcome.name = name;
  ucode::UniqueFd devnull(open("/dev/null", O_RDONLY | O_CLOEXEC));
  int pipefd[2];
  if (!devnull.valid() || pipe2(pipefd, O_CLOEXEC) != 0) {
    outcome.reason = std::string("cannot set up hook I/O: ") + std::strerror(errno);
    return outcome;
  }
  ucode::UniqueFd read_end(pipefd[0]);
  ucode::UniqueFd write_end(pipefd[1]);
  // Only our read end is non-blocking; the hook's stdout stays blocking.
  if (fcntl(read_end.get(), F_SETFL, O_NONBLOCK) != 0) {
    outcome.reason = std::string("cannot set up hook I/O: ") + std::strerror(errno);
    return outcome;
  }
  pid_t pid = fork();
  if (pid < 0) {
    outcome.reason = std::string("fork: ") + std::strerror(errno);
    return outcome;
  }
  if (pid == 0) {
    ChildExec(plan, devnull.get(), write_end.get());
  }
  setpgid(pid, pid);  // also from the parent, closing the race with an early kill
  write_end.Reset();
  ucode::UniqueFd pidfd(PidfdOpen(pid));

  bool exited = false;
  bool timed_out = false;
  bool pipe_open = true;
  int status = 0;
  while (!exited) {
    auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
      break;
    }
    int timeout_ms = static_cast<int>(
        std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count());
    // Without a pidfd (kernel < 5.3) the exit is noticed with a short tick.
    if (!pidfd.valid()) timeout_ms = std::min(timeout_ms, 20);
    pollfd fds[2] = {{pipe_open ? read_end.get() : -1, POLLIN, 0}, {pidfd.get(), POLLIN, 0}};
    int r = poll(fds, 2, timeout_ms);
    if (r < 0 && errno != EINTR) break;
    if (pipe_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      pipe_open = Drain(read_end.get(), &outcome.output, max_output);
    }
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) exited = true;
  }
  if (!exited) {
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  // Whatever it started dies with it, in its group or not (setsid).
  KillAllDescendants();
  // Keep what the hook wrote last; never wait for descendants that still hold
  // the pipe open.
  if (pipe_open) Drain(read_end.get(), &outcome.output, max_output);
  if (timed_out) {
    outcome.reason = "deadline of " + std::to_string(options.deadline.count()) +
                     " ms reached; killed";
  } else {
    outcome.ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    outcome.reason = DescribeStatus(status);
  }
  return outcome;
}

}  // namespace

std::vector<std::string> ListHooks(const std::string& dir, std::string* error) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno != ENOENT) *error = "cannot read hook directory " + dir + ": " + std::strerror(errno);
    return names;
  }
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!ValidHookName(name)) continue;
    struct stat st;
    std::string path = dir + "/" + name;
    // lstat: a symlink is listed (and refused at run time, never followed).
    if (lstat(path.c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
    if (S_ISREG(st.st_mode) && (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)) == 0) continue;
    names.push_back(std::move(name));
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

HookRun RunHooks(const std::string& dir, const HookOptions& options) {
  HookRun run;
  std::vector<std::string> names = ListHooks(dir, &run.error);
  if (!run.error.empty()) {
    run.ok = false;
    return run;
  }
  if (names.empty()) return run;
  struct stat dst;
  if (stat(dir.c_str(), &dst) != 0) {
    run.ok = false;
    run.error = "cannot stat hook directory " + dir + ": " + std::strerror(errno);
    return run;
  }
  if (std::string why = Untrusted(dst, "hook directory", true); !why.empty()) {
    run.ok = false;
    run.error = why + ": " + dir + " refused, no hook run";
    return run;
  }
  static const bool subreaper = BecomeSubreaper();
  (void)subreaper;  // without it (old kernels) the process-group kill still applies
  const Clock::time_point deadline = Clock::now() + options.deadline;
  for (const std::string& name : names) {
    struct stat st;
    std::string why = lstat((dir + "/" + name).c_str(), &st) != 0
                          ? std::string("hook vanished: ") + std::strerror(errno)
                          : Untrusted(st, "hook", false);
    if (!why.empty()) {
      run.ok = false;
      run.hooks.push_back(HookOutcome{.name = name, .ok = false, .reason = why + "; refused, not run"});
      if (options.stop_on_failure) break;
      continue;
    }
    ExecPlan plan;
    plan.path = dir + "/" + name;
    plan.env = options.env;
    plan.env.push_back(kHookPath);
    plan.argv = {plan.path.data(), nullptr};
    for (std::string& e : plan.env) plan.envp.push_back(e.data());
    plan.envp.push_back(nullptr);
    HookOutcome outcome = RunOne(plan, name, deadline, options);
    bool ok = outcome.ok;
    run.hooks.push_back(std::move(outcome));
    if (!ok) {
      run.ok = false;
      if (options.stop_on_failure) break;
    }
  }
  return run;
}

}  // namespace ucode_agent
