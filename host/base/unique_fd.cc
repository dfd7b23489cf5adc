#include "host/base/unique_fd.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ucode {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  // The code that fits the errno: EACCES/EPERM mean PERMISSION_DENIED, and so on.
  using C = absl::StatusCode;
  constexpr std::pair<int, C> kCodes[] = {{ENOENT, C::kNotFound},
                                          {ENODEV, C::kNotFound},
                                          {ENXIO, C::kNotFound},
                                          {EACCES, C::kPermissionDenied},
                                          {EPERM, C::kPermissionDenied},
                                          {EBUSY, C::kUnavailable},
                                          {EAGAIN, C::kUnavailable},
                                          {EINTR, C::kUnavailable},
                                          {EINVAL, C::kInvalidArgument},
                                          {E2BIG, C::kInvalidArgument},
                                          {ETIMEDOUT, C::kDeadlineExceeded},
                                          {EEXIST, C::kAlreadyExists}};
  C code = C::kInternal;
  for (const auto& [e, c] : kCodes) {
    if (e == err) code = c;
  }
  return absl::Status(code, absl::StrCat(what, ": ", std::strerror(err), " (errno ", err, ")"));
}

}  // namespace ucode
