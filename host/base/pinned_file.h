// Reading a file that was pinned first with an O_PATH descriptor. Opening a path for
// reading can block (a FIFO waits for a writer) or act (a watchdog device arms), so callers
// resolve it with O_PATH, which opens nothing, check its type with fstat, and only then
// read it through this: the read-open goes through that very inode (/proc/self/fd), so a
// rename in between cannot swap another file in.
#ifndef UCODE_HOST_BASE_PINNED_FILE_H_
#define UCODE_HOST_BASE_PINNED_FILE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ucode {

// Opens the file behind `pinned` (an O_PATH descriptor of a regular file) for reading and
// reads at most `max_read` bytes; fewer if the file is shorter now. `path` names it in
// errors.
absl::StatusOr<std::vector<uint8_t>> ReadPinnedFile(int pinned, const std::string& path,
                                                    size_t max_read);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_PINNED_FILE_H_
