// The whole of a small file: a /proc or /sys entry, a log, a test's output.
#ifndef UCODE_HOST_BASE_READ_FILE_H_
#define UCODE_HOST_BASE_READ_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace ucode {

// The file's bytes, or NOT_FOUND ("cannot read <path>") when it cannot be opened.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_READ_FILE_H_
