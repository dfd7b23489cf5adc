#include "vmm/rendezvous/vmm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace ucode::rendezvous {
namespace {

constexpr int kChildControlFd = 3;

int PollMs(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return -1;
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

bool IsExecutable(const std::string& p) { return access(p.c_str(), X_OK) == 0; }

}  // namespace

absl::StatusOr<std::string> FindVmmBinary() {
  std::vector<std::string> tried;
  auto consider = [&](const std::string& p) {
    tried.push_back(p);
    return IsExecutable(p);
  };
  if (const char* env = std::getenv("UCODE_VMM"); env != nullptr && consider(env)) return env;
  constexpr char kRel[] = "ucode/vmm/kvm/ucode-vmm";
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* dir = std::getenv(var); dir != nullptr) {
      std::string p = absl::StrCat(dir, "/", kRel);
      if (consider(p)) return p;
    }
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    std::string exe(self, n);
    std::string p = absl::StrCat(exe, ".runfiles/", kRel);
    if (consider(p)) return p;
    std::string dir = exe.substr(0, exe.rfind('/'));
    for (const std::string& q : {absl::StrCat(dir, "/ucode-vmm"),
                                 absl::StrCat(dir, "/../kvm/ucode-vmm")}) {
      if (consider(q)) return q;
    }
  }
  if (consider("vmm/kvm/ucode-vmm")) return std::string("vmm/kvm/ucode-vmm");
  return absl::NotFoundError(absl::StrCat("ucode-vmm not found; tried ",
                                          absl::StrJoin(tried, ", "),
                                          " (set UCODE_VMM)"));
}

absl::StatusOr<std::unique_ptr<VmmProcess>> VmmProcess::Spawn(const std::string& vmm_path,
                                                              const VmSpec& spec,
                                                              const std::string& log_path) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    return ErrnoStatus(errno, "socketpair control");
  }
  UniqueFd ours(sv[0]);
  // Above the low numbers so that dup2 onto kChildControlFd never aliases itself.
  UniqueFd theirs(fcntl(sv[1], F_DUPFD_CLOEXEC, 10));
  close(sv[1]);
  if (!theirs) return ErrnoStatus(errno, "fcntl F_DUPFD_CLOEXEC");

  std::vector<std::string> args = {
      vmm_path,
      absl::StrCat("--control_fd=", kChildControlFd),
      absl::StrCat("--name=", spec.name),
      absl::StrCat("--program=", spec.program),
      absl::StrCat("--vcpus=", spec.vcpus),
      absl::StrCat("--memory_mib=", spec.memory_mib),
      absl::StrFormat("--initial_revision=0x%x", spec.initial_revision),
      absl::StrCat("--refuse_park_vcpu=", spec.refuse_park_vcpu),
  };
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, theirs.get(), kChildControlFd);
  if (!log_path.empty()) {
    // 0600 and never through a symlink; appended to (a VM of the same name in the same
    // directory continues its log), so the directory must be the caller's own.
    posix_spawn_file_actions_addopen(&fa, 2, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_NOFOLLOW | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
  }
  // Start the child with no blocked signals whatever ours are. The park signal's default
  // action would kill it, but kicks go only to vCPU thread ids, which the VMM publishes
  // (ATTACH) after installing the handler.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int err = posix_spawn(&pid, vmm_path.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("posix_spawn ", vmm_path));
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    int e = errno;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return ErrnoStatus(e, "pidfd_open");
  }
  return std::unique_ptr<VmmProcess>(
      new VmmProcess(spec, pid, std::move(pidfd), std::move(ours)));
}

VmmProcess::VmmProcess(VmSpec spec, pid_t pid, UniqueFd pidfd, UniqueFd control)
    : spec_(std::move(spec)), pid_(pid), pidfd_(std::move(pidfd)), control_(std::move(control)) {}

VmmProcess::~VmmProcess() { Stop().IgnoreError(); }

absl::StatusOr<std::string> VmmProcess::Call(const std::string& request, int fd,
                                             absl::Duration timeout) {
  if (exited_) return absl::UnavailableError(absl::StrCat(spec_.name, ": ucode-vmm exited"));
  iovec iov{const_cast<char*>(request.data()), request.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  std::string what = absl::StrCat(spec_.name, " (pid ", pid_, ") ", request.substr(0, 16));
  if (sendmsg(control_.get(), &msg, MSG_NOSIGNAL) < 0) {
    return ErrnoStatus(errno, absl::StrCat("sendmsg to ", what));
  }
  // Also watch the process: a VMM that died will never answer.
  pollfd p[2] = {{control_.get(), POLLIN, 0}, {pidfd_.get(), POLLIN, 0}};
  int r;
  do {
    r = poll(p, 2, PollMs(timeout));
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, absl::StrCat("poll ", what));
  if (r == 0) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, ": no reply within ", absl::FormatDuration(timeout)));
  }
  char buf[512];
  ssize_t n = (p[0].revents & POLLIN) ? recv(control_.get(), buf, sizeof(buf), 0) : 0;
  if (n <= 0) return absl::UnavailableError(absl::StrCat(what, ": ucode-vmm went away"));
  std::string reply(buf, n);
  if (!absl::StartsWith(reply, "OK")) {
    return absl::InternalError(absl::StrCat(what, ": ", reply));
  }
  return reply;
}

bool VmmProcess::WaitExit(absl::Duration timeout) {
  pollfd p{pidfd_.get(), POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, PollMs(timeout));
  } while (r < 0 && errno == EINTR);
  if (r <= 0) return false;
  waitpid(pid_, nullptr, 0);
  exited_ = true;
  return true;
}

absl::Status VmmProcess::Stop(absl::Duration grace) {
  if (exited_) return absl::OkStatus();
  absl::Status s = Call("QUIT", -1, grace).status();
  control_.Reset();  // EOF also tells the VMM to release and go
  if (WaitExit(grace)) return s;
  syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  WaitExit(absl::InfiniteDuration());
  return absl::DeadlineExceededError(absl::StrCat(spec_.name, " (pid ", pid_,
                                                  ") did not exit after QUIT; killed"));
}

}  // namespace ucode::rendezvous
