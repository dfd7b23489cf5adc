// The minimal-revision policy options shared by every ucodectl command that selects an
// image. Named as the kernel names its knob, so an operator who knows force_minrev gets
// what they expect: --force-minrev enforces the rule (ucode's default anyway), and the
// explicit override that loads an unsafe image is --ignore-minrev.
#ifndef UCODE_VMM_UCODECTL_MIN_REV_OPTION_H_
#define UCODE_VMM_UCODECTL_MIN_REV_OPTION_H_

#include <vector>

#include "absl/status/statusor.h"
#include "host/microcode/selection.h"
#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

void AppendMinRevOptionSpecs(std::vector<OptionSpec>& specs);

// kEnforce unless --ignore-minrev; both options together are a usage error.
absl::StatusOr<microcode::MinRevPolicy> MinRevPolicyFromArgs(const ParsedArgs& args);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_MIN_REV_OPTION_H_
