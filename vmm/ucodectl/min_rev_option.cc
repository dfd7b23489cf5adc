#include "vmm/ucodectl/min_rev_option.h"

#include "absl/status/status.h"

namespace ucode::ctl {

void AppendMinRevOptionSpecs(std::vector<OptionSpec>& specs) {
  specs.push_back(
      {.name = "force-minrev",
       .takes_value = false,
       .help = "enforce the minimal-revision rule (default; the kernel's force_minrev=1)"});
  specs.push_back({.name = "ignore-minrev",
                   .takes_value = false,
                   .help = "load even an image the minimal-revision rule calls unsafe"});
}

absl::StatusOr<microcode::MinRevPolicy> MinRevPolicyFromArgs(const ParsedArgs& args) {
  if (args.Has("ignore-minrev") && args.Has("force-minrev")) {
    return absl::InvalidArgumentError("--ignore-minrev and --force-minrev contradict each other");
  }
  return args.Has("ignore-minrev") ? microcode::MinRevPolicy::kIgnore
                                   : microcode::MinRevPolicy::kEnforce;
}

}  // namespace ucode::ctl
