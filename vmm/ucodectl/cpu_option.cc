#include "vmm/ucodectl/cpu_option.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace ucode::ctl {
namespace {

bool ParseHex(absl::string_view v, uint32_t* out) {
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
  return absl::SimpleHexAtoi(v, out);
}

}  // namespace

absl::StatusOr<microcode::CpuIdentity> ParseCpuOption(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  microcode::CpuIdentity cpu;
  if (parts.empty() || parts.size() > 3 || !ParseHex(parts[0], &cpu.signature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--cpu ", text, ": want ", kCpuOptionSyntax));
  }
  if (parts.size() > 1) {
    uint32_t pf = 0;
    if (!ParseHex(parts[1], &pf)) return absl::InvalidArgumentError("--cpu: PF is not a number");
    // A CPU's flags have exactly one bit, 1 << MSR 0x17[52:50] (what sysfs shows).
    if (pf == 0 || (pf & (pf - 1)) != 0 || pf > 0x80) {
      return absl::InvalidArgumentError(
          absl::StrFormat("--cpu: PF 0x%x is not a one-bit mask 0x01..0x80", pf));
    }
    cpu.platform_id = static_cast<uint32_t>(__builtin_ctz(pf));
  }
  if (parts.size() > 2 && !ParseHex(parts[2], &cpu.current_revision)) {
    return absl::InvalidArgumentError("--cpu: REV is not a hex number");
  }
  return cpu;
}

}  // namespace ucode::ctl
