#include "host/base/pinned_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "host/base/unique_fd.h"

namespace ucode {

absl::StatusOr<std::vector<uint8_t>> ReadPinnedFile(int pinned, const std::string& path,
                                                    size_t max_read) {
  UniqueFd fd(::open(absl::StrCat("/proc/self/fd/", pinned).c_str(),
                     O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("reopen ", path));
  std::vector<uint8_t> out(max_read);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;  // shorter than expected: keep what is there
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace ucode
