#include "host/base/config_text.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace ucode {

std::vector<ContentLine> ContentLines(absl::string_view text) {
  std::vector<ContentLine> out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) out.push_back({number, line});
  }
  return out;
}

absl::StatusOr<uint64_t> ParseConfigNumber(absl::string_view what, absl::string_view text) {
  uint64_t out = 0;
  const bool ok = absl::StartsWithIgnoreCase(text, "0x")
                      ? absl::SimpleHexAtoi(text.substr(2), &out)
                      : absl::SimpleAtoi(text, &out);
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: '%s' is not a number", what, text));
  }
  return out;
}

}  // namespace ucode
