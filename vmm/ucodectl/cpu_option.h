// `--cpu SIG[,PF[,REV]]`: the CPU identity `ucodectl inspect` selects for, locally and
// through ucoded (`--server`), in one syntax. PF is the processor-flags mask as sysfs shows
// it (cpu*/microcode/processor_flags: one bit, 1 << MSR 0x17[52:50]); the identity holds
// the platform id (that bit's index), as microcode::CpuIdentity and ucode.v1.CpuIdentity do.
#ifndef UCODE_VMM_UCODECTL_CPU_OPTION_H_
#define UCODE_VMM_UCODECTL_CPU_OPTION_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "host/microcode/selection.h"

namespace ucode::ctl {

inline constexpr char kCpuOptionSyntax[] = "SIG[,PF[,REV]]";
inline constexpr char kCpuOptionHelp[] =
    "SIG[,PF[,REV]]: show the selection for CPUID(1).EAX SIG, processor flags PF (the "
    "one-bit mask sysfs shows in cpu*/microcode/processor_flags; default 0x1) and running "
    "revision REV (default 0); all hex";

// INVALID_ARGUMENT naming the part that is wrong (and why, for a PF with zero or several
// bits).
absl::StatusOr<microcode::CpuIdentity> ParseCpuOption(absl::string_view text);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_CPU_OPTION_H_
