#include "vmm/daemon/unix_listener.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Listen(const std::string& path,
                                                                   mode_t mode) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("unix socket path '", path, "': length ",
                                                   path.size(), " not in 1..",
                                                   sizeof(addr.sun_path) - 1));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  std::string dir = path.substr(0, path.find_last_of('/'));
  if (!dir.empty() && mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat("mkdir ", dir));
  }
  struct stat st;
  if (lstat(path.c_str(), &st) == 0) {
    // A socket left by a previous run is replaced; any other file is an operator mistake
    // we must not delete.
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
    }
    if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, absl::StrCat("unlink ", path));
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX)");
  // umask would otherwise widen the window between bind and chmod; close it entirely.
  mode_t old_umask = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) return ErrnoStatus(bind_errno, absl::StrCat("bind ", path));
  if (chmod(path.c_str(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  if (listen(fd.get(), 128) != 0) return ErrnoStatus(errno, absl::StrCat("listen ", path));
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoStatus(errno, "eventfd");
  return std::unique_ptr<UnixListener>(new UnixListener(path, std::move(fd), std::move(wake)));
}

UnixListener::~UnixListener() {
  Stop();
  unlink(path_.c_str());
}

void UnixListener::Start(Handler handler) {
  thread_ = std::thread([this, handler = std::move(handler)] {
    pthread_setname_np(pthread_self(), "ucoded-accept");
    AcceptLoop(handler);
  });
}

void UnixListener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
  thread_.join();
}

void UnixListener::AcceptLoop(const Handler& handler) {
  for (;;) {
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogLine("accept_error", {{"error", ErrnoStatus(errno, "poll").ToString()}});
      return;
    }
    if (fds[1].revents != 0) return;
    // gRPC's transport expects a non-blocking socket.
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn) {
      // EAGAIN: another wakeup took it; ECONNABORTED: the caller gave up; EMFILE: wait for
      // fds to free up rather than spin (poll would report the backlog again at once).
      if (errno == EMFILE || errno == ENFILE) {
        LogLine("accept_error", {{"error", ErrnoStatus(errno, "accept4").ToString()}});
        poll(&fds[1], 1, 100);
      }
      continue;
    }
    struct ucred peer = {};
    socklen_t len = sizeof(peer);
    if (getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
      LogLine("accept_error", {{"error", ErrnoStatus(errno, "SO_PEERCRED").ToString()}});
      continue;  // no identity, no service: the connection is closed
    }
    handler(std::move(conn), peer);
  }
}

}  // namespace ucode::daemon
