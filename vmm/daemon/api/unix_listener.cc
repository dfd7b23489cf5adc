#include "vmm/daemon/api/unix_listener.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {
namespace {

// OK when nothing accepts connections on the socket at `addr` (a stale one, safe to
// replace); FAILED_PRECONDITION when a server is there.
absl::Status CheckNotServed(const struct sockaddr_un& addr, const std::string& path) {
  UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return ErrnoStatus(errno, "socket(AF_UNIX)");
  if (connect(probe.get(), reinterpret_cast<const struct sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno == ECONNREFUSED) return absl::OkStatus();
    if (errno != EAGAIN) return ErrnoStatus(errno, absl::StrCat("connect ", path));
    // EAGAIN: its backlog is full, so someone is listening.
  }
  return absl::FailedPreconditionError(
      absl::StrCat(path,
                   ": another server (another ucoded?) accepts connections on it; refusing to "
                   "replace a live socket"));
}

}  // namespace

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
    // A socket left by a previous run is replaced; a live one (another ucoded serving it)
    // or any other file is never deleted.
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " exists and is not a socket; refusing to replace it"));
    }
    RETURN_IF_ERROR(CheckNotServed(addr, path));
    if (unlink(path.c_str()) != 0) return ErrnoStatus(errno, absl::StrCat("unlink ", path));
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX)");
  // The node is born with `mode` (bind applies the umask): no chmod by path afterwards,
  // which would follow a symlink swapped in by whoever can write the directory.
  mode_t old_umask = umask(~mode & 0777);
  int rc = bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
  int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) return ErrnoStatus(bind_errno, absl::StrCat("bind ", path));
  struct stat bound;
  if (lstat(path.c_str(), &bound) != 0) return ErrnoStatus(errno, absl::StrCat("lstat ", path));
  if (listen(fd.get(), 128) != 0) return ErrnoStatus(errno, absl::StrCat("listen ", path));
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoStatus(errno, "eventfd");
  auto listener =
      std::unique_ptr<UnixListener>(new UnixListener(path, std::move(fd), std::move(wake)));
  listener->bound_dev_ = bound.st_dev;
  listener->bound_ino_ = bound.st_ino;
  return listener;
}

UnixListener::~UnixListener() {
  Stop();
  // Only our own socket: another instance may have bound the path since.
  struct stat st;
  if (lstat(path_.c_str(), &st) == 0 && st.st_dev == bound_dev_ && st.st_ino == bound_ino_) {
    unlink(path_.c_str());
  }
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

absl::StatusOr<UnixListener::Peer> UnixListener::PeerOf(int conn) {
  Peer peer;
  socklen_t len = sizeof(peer.cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer.cred, &len) != 0) {
    return ErrnoStatus(errno, "SO_PEERCRED");
  }
  // SO_PEERGROUPS (Linux 4.13): the caller's supplementary groups as the kernel recorded
  // them at connect(), like SO_PEERCRED, so nothing the caller does afterwards changes them.
  peer.groups.resize(64);
  for (;;) {
    len = static_cast<socklen_t>(peer.groups.size() * sizeof(gid_t));
    if (getsockopt(conn, SOL_SOCKET, SO_PEERGROUPS, peer.groups.data(), &len) == 0) break;
    if (errno != ERANGE) return ErrnoStatus(errno, "SO_PEERGROUPS");
    peer.groups.resize(len / sizeof(gid_t));  // ERANGE sets len to the size needed
  }
  peer.groups.resize(len / sizeof(gid_t));
  return peer;
}

int UnixListener::ConnectionsFrom(uid_t uid) const {
  // The kernel's own list of our connections: every fd of this process that is a
  // connected socket accepted on path_ (its local name), by the peer's uid. Nothing to
  // keep in step with gRPC, which closes connections on its own threads.
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  while (struct dirent* e = readdir(dir)) {
    int fd = 0;
    if (!absl::SimpleAtoi(e->d_name, &fd) || fd == listen_fd_.get() || fd == dirfd(dir)) {
      continue;
    }
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) continue;
    struct sockaddr_un local = {};
    len = sizeof(local);
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&local), &len) != 0 ||
        len <= offsetof(struct sockaddr_un, sun_path) ||
        absl::string_view(local.sun_path, strnlen(local.sun_path, sizeof(local.sun_path))) !=
            path_) {
      continue;
    }
    struct ucred cred = {};
    len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == uid) ++count;
  }
  closedir(dir);
  return count;
}

void UnixListener::AcceptLoop(const Handler& handler) {
  // One descriptor kept in reserve (/dev/null): when the process runs out, it is given up
  // to accept the waiting caller, so the backlog is answered (served or closed) instead of
  // every caller hanging until some descriptor frees up.
  UniqueFd reserve;
  for (;;) {
    if (!reserve) reserve.Reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    struct pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      LogLine("accept_error", {{"error", ErrnoStatus(errno, "poll").ToString()}});
      return;
    }
    if (fds[1].revents != 0) return;
    // gRPC's transport expects a non-blocking socket.
    UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!conn && (errno == EMFILE || errno == ENFILE) && reserve) {
      LogLine("accept_error", {{"error", ErrnoStatus(errno, "accept4").ToString()},
                               {"action", "using the reserved descriptor"}});
      reserve.Reset();
      conn.Reset(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    }
    if (!conn) {
      // EAGAIN: another wakeup took it; ECONNABORTED: the caller gave up; EMFILE with the
      // reserve in use: wait for fds to free up rather than spin.
      if (errno == EMFILE || errno == ENFILE) {
        LogLine("accept_error", {{"error", ErrnoStatus(errno, "accept4").ToString()}});
        poll(&fds[1], 1, 100);
      }
      continue;
    }
    absl::StatusOr<Peer> peer = PeerOf(conn.get());
    if (!peer.ok()) {
      LogLine("accept_error", {{"error", peer.status().ToString()}});
      continue;  // no identity, no service: the connection is closed
    }
    handler(std::move(conn), *peer);
  }
}

}  // namespace ucode::daemon
