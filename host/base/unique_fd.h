// UniqueFd (unique_fd_core.h), and ErrnoStatus for the system calls made on it.
#ifndef UCODE_HOST_BASE_UNIQUE_FD_H_
#define UCODE_HOST_BASE_UNIQUE_FD_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "host/base/unique_fd_core.h"

namespace ucode {

// Status for a failed system call: "<what>: <strerror> (errno N)", with the absl code
// that fits the errno (ENOENT → NOT_FOUND, EACCES/EPERM → PERMISSION_DENIED, ...).
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_UNIQUE_FD_H_
