#include "vmm/qmp/line_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>


#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"

namespace ucode::qmp {
namespace {

// Between connection attempts while QEMU has not created its socket yet.
constexpr absl::Duration kConnectRetry = absl::Milliseconds(20);

int PollTimeoutMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60'000));
}

}  // namespace

absl::StatusOr<LineSocket> LineSocket::Connect(absl::string_view path, absl::Time deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("QMP socket path '", path, "' is ",
                                                   path.size(), " bytes; unix(7) allows 1..",
                                                   sizeof(addr.sun_path) - 1));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  for (;;) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return ErrnoStatus(errno, "socket(AF_UNIX)");
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      return LineSocket(std::move(fd), std::string(path));
    }
    const int err = errno;
    // ENOENT: not created yet; ECONNREFUSED: created, not listening yet.
    if ((err != ENOENT && err != ECONNREFUSED) || absl::Now() + kConnectRetry > deadline) {
      return ErrnoStatus(err, absl::StrCat("connect to QMP socket ", path));
    }
    absl::SleepFor(kConnectRetry);
  }
}

absl::Status LineSocket::WaitReady(short events, absl::Time deadline, absl::string_view what) {
  for (;;) {
    pollfd p{fd_.get(), events, 0};
    const int n = poll(&p, 1, PollTimeoutMs(deadline));
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return ErrnoStatus(errno, absl::StrCat("poll ", path_));
    if (n == 0 && absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(what, " on ", path_, ": deadline passed"));
    }
  }
}

absl::StatusOr<std::string> LineSocket::ReadLine(absl::Time deadline) {
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buffer_.size() > kMaxLine) {
      return absl::ResourceExhaustedError(
          absl::StrCat("QMP line on ", path_, " exceeds ", kMaxLine, " bytes"));
    }
    RETURN_IF_ERROR(WaitReady(POLLIN, deadline, "read QMP line"));
    char chunk[8192];
    const ssize_t n = read(fd_.get(), chunk, sizeof(chunk));
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
    } else if (n == 0) {
      return absl::UnavailableError(absl::StrCat("QMP socket ", path_, " closed by QEMU"));
    } else if (errno != EINTR && errno != EAGAIN) {
      return ErrnoStatus(errno, absl::StrCat("read ", path_));
    }
  }
}

absl::Status LineSocket::WriteLine(absl::string_view text, absl::Time deadline) {
  std::string out = absl::StrCat(text, "\n");
  size_t done = 0;
  while (done < out.size()) {
    RETURN_IF_ERROR(WaitReady(POLLOUT, deadline, "write QMP command"));
    const ssize_t n = send(fd_.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      return ErrnoStatus(errno, absl::StrCat("send to ", path_));
    }
  }
  return absl::OkStatus();
}

}  // namespace ucode::qmp
