// Writes all of a string to a blocking file descriptor. Header-only and libc-only, so the
// static agent binary and the tests that drive it can share it.
#ifndef UCODE_GUEST_AGENT_WRITE_ALL_H_
#define UCODE_GUEST_AGENT_WRITE_ALL_H_

#include <unistd.h>

#include <cerrno>
#include <string>

namespace ucode_agent {

// Retries short writes and EINTR; false on any other error (errno says which).
inline bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_WRITE_ALL_H_
