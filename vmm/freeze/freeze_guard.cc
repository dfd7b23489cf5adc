#include "vmm/freeze/freeze_guard.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"

namespace ucode::freeze {
namespace {

constexpr int kGuardSockFd = 3;

int64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// MSG_NOSIGNAL: a dead peer must not SIGPIPE the guard before it thaws.
void WriteByte(int fd, char c) {
  while (send(fd, &c, 1, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// The guard's whole life, in the forked child: system calls only.
[[noreturn]] void GuardMain(pid_t parent, int sock, const std::vector<const char*>& paths,
                            const std::vector<const char*>& values, int64_t hold_limit_ms) {
  setsid();
  if (dup2(sock, kGuardSockFd) < 0) _exit(2);
  syscall(SYS_close_range, kGuardSockFd + 1, ~0U, 0);
  auto thaw = [&] {
    for (size_t i = 0; i < paths.size(); ++i) {
      const int fd = open(paths[i], O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
      if (fd < 0) continue;
      size_t len = 0;
      while (values[i][len] != '\0') ++len;
      while (write(fd, values[i], len) < 0 && errno == EINTR) {
      }
      close(fd);
    }
  };
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, parent, 0));
  // The parent may have died before pidfd_open: then we were reparented already.
  if (pidfd < 0 || getppid() != parent) {
    thaw();
    _exit(0);
  }
  WriteByte(kGuardSockFd, 'R');
  int64_t deadline_ms = -1;  // disarmed
  for (;;) {
    pollfd fds[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = kGuardSockFd, .events = POLLIN}};
    int timeout = -1;
    if (deadline_ms >= 0) {
      const int64_t left = deadline_ms - MonotonicMs();
      if (left <= 0) {
        thaw();
        WriteByte(kGuardSockFd, 'F');
        deadline_ms = -1;
        continue;
      }
      timeout = static_cast<int>(left > 1000000 ? 1000000 : left);
    }
    const int n = poll(fds, 2, timeout);
    if (n < 0 && errno != EINTR) {
      thaw();
      _exit(1);
    }
    if (n <= 0) continue;
    if (fds[0].revents != 0) {  // the parent died
      thaw();
      _exit(0);
    }
    if (fds[1].revents != 0) {
      char c = 0;
      const ssize_t r = read(kGuardSockFd, &c, 1);
      if (r < 0 && errno == EINTR) continue;
      if (r == 1 && c == 'A') {
        deadline_ms = MonotonicMs() + hold_limit_ms;
      } else if (r == 1 && c == 'C') {
        deadline_ms = -1;
      } else if (r == 1 && c == 'P') {
        WriteByte(kGuardSockFd, 'p');
      } else {  // 'T', EOF or an error
        thaw();
        _exit(0);
      }
    }
  }
}

}  // namespace

absl::StatusOr<FreezeGuard> FreezeGuard::Start(const std::vector<ThawWrite>& writes,
                                               absl::Duration hold_limit,
                                               absl::Duration start_timeout) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoStatus(errno, "freeze guard: socketpair");
  }
  UniqueFd mine(sv[0]);
  UniqueFd theirs(sv[1]);
  // Everything the child touches is built before fork.
  std::vector<const char*> paths;
  std::vector<const char*> values;
  for (const ThawWrite& w : writes) {
    paths.push_back(w.path.c_str());
    values.push_back(w.value.c_str());
  }
  const pid_t parent = getpid();
  const int64_t hold_limit_ms = std::max<int64_t>(1, absl::ToInt64Milliseconds(hold_limit));
  const pid_t pid = fork();
  if (pid < 0) return ErrnoStatus(errno, "freeze guard: fork");
  if (pid == 0) GuardMain(parent, theirs.get(), paths, values, hold_limit_ms);
  theirs.Reset();
  FreezeGuard guard(pid, std::move(mine));
  pollfd p = {.fd = guard.sock_.get(), .events = POLLIN};
  char c = 0;
  const int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(start_timeout)));
  if (n != 1 || read(guard.sock_.get(), &c, 1) != 1 || c != 'R') {
    return absl::UnavailableError(
        absl::StrCat("freeze guard (pid ", pid, ") did not arm within ",
                     absl::FormatDuration(start_timeout), "; nothing was frozen"));
  }
  return guard;
}

FreezeGuard::FreezeGuard(FreezeGuard&& other) noexcept
    : pid_(other.pid_), sock_(std::move(other.sock_)) {
  other.pid_ = -1;
}

FreezeGuard::~FreezeGuard() {
  if (pid_ > 0) End('T');
}

absl::Status FreezeGuard::Arm() {
  if (pid_ <= 0) return absl::FailedPreconditionError("freeze guard: not running");
  const char c = 'A';
  if (send(sock_.get(), &c, 1, MSG_NOSIGNAL) != 1) {
    return ErrnoStatus(errno, absl::StrCat("freeze guard (pid ", pid_, "): arm"));
  }
  return absl::OkStatus();
}

void FreezeGuard::Disarm() {
  if (pid_ > 0) WriteByte(sock_.get(), 'C');
}

int FreezeGuard::TakeFired() {
  if (pid_ <= 0) return 0;
  WriteByte(sock_.get(), 'P');
  return ReadUntil('p');
}

int FreezeGuard::ReadUntil(char until) {
  int fired = 0;
  for (;;) {
    char c = 0;
    const ssize_t r = read(sock_.get(), &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r != 1) return fired;
    if (c == 'F') ++fired;
    if (until != 0 && c == until) return fired;
  }
}

int FreezeGuard::End(char command) {
  if (pid_ <= 0) return 0;
  WriteByte(sock_.get(), command);
  const int fired = ReadUntil(0);  // until the guard exits and its end closes
  sock_.Reset();
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return fired;
}

}  // namespace ucode::freeze
