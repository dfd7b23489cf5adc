#include "host/base/unique_fd.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ucode {

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) {
    // close() may report EINTR, but on Linux the fd is released anyway; retrying could
    // close an fd another thread just got.
    ::close(fd_);
  }
  fd_ = fd;
}

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string message = absl::StrCat(what, ": ", std::strerror(err), " (errno ", err, ")");
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ENXIO:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EBUSY:
    case EAGAIN:
    case EINTR:
      return absl::UnavailableError(message);
    case EINVAL:
    case E2BIG:
      return absl::InvalidArgumentError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace ucode
