// Move-only owner of a file descriptor: every fd in ucode lives in one of these.
#ifndef UCODE_HOST_BASE_UNIQUE_FD_H_
#define UCODE_HOST_BASE_UNIQUE_FD_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ucode {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  [[nodiscard]] int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the current fd (if any) and takes ownership of `fd`.
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Status for a failed system call: "<what>: <strerror> (errno N)", with the absl code
// that fits the errno (ENOENT → NOT_FOUND, EACCES/EPERM → PERMISSION_DENIED, ...).
absl::Status ErrnoStatus(int err, absl::string_view what);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_UNIQUE_FD_H_
