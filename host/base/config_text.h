// The small line-oriented text files operators write for ucode (an emulated host's
// `key = value` config, a rehearsal's fleet): '#' comments, blank lines, numbers in
// decimal or 0x hex. Callers parse the content of each line themselves.
#ifndef UCODE_HOST_BASE_CONFIG_TEXT_H_
#define UCODE_HOST_BASE_CONFIG_TEXT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ucode {

struct ContentLine {
  int number = 0;          // 1-based, in the text
  absl::string_view text;  // without its comment and surrounding blanks; never empty
};

// The lines of `text` that hold something once comments and blanks are removed.
std::vector<ContentLine> ContentLines(absl::string_view text);

// A decimal or 0x-prefixed hex number; INVALID_ARGUMENT "<what>: '<text>' is not a number".
absl::StatusOr<uint64_t> ParseConfigNumber(absl::string_view what, absl::string_view text);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_CONFIG_TEXT_H_
