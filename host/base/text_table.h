// Rows of cells as a plain-text table for a terminal: columns left-aligned, two spaces
// apart, the last one unpadded so that lines carry no trailing blanks.
#ifndef UCODE_HOST_BASE_TEXT_TABLE_H_
#define UCODE_HOST_BASE_TEXT_TABLE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace ucode {

// One line per row, each starting with `indent` and ending with '\n'.
std::string TextTable(const std::vector<std::vector<std::string>>& rows,
                      absl::string_view indent = "");

}  // namespace ucode

#endif  // UCODE_HOST_BASE_TEXT_TABLE_H_
