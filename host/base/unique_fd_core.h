// UniqueFd alone, free of Abseil and of any .cc: the static guest agent (guest-agent/)
// owns its fds with it too. Host code includes host/base/unique_fd.h, which adds
// ErrnoStatus.
#ifndef UCODE_HOST_BASE_UNIQUE_FD_CORE_H_
#define UCODE_HOST_BASE_UNIQUE_FD_CORE_H_

#include <unistd.h>

namespace ucode {

// Move-only owner of a file descriptor: every fd in ucode lives in one of these.
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
  // Closes the current fd (if any) and takes ownership of `fd`. close() is not retried
  // on EINTR: on Linux the fd is released anyway, and a retry could close an fd another
  // thread just got.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace ucode

#endif  // UCODE_HOST_BASE_UNIQUE_FD_CORE_H_
