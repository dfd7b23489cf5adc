// What `ucodectl stage` and `ucodectl load` share: the platform options and progress
// output (a bar per package on a terminal, plain lines otherwise).
#ifndef UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
#define UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "host/platform/platform.h"
#include "host/staging/staging_driver.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

// --platform, --host-config, --host KEY=VALUE, --root, --json.
std::vector<OptionSpec> PlatformOptionSpecs();

// The platform the options name: the emulated host (default; DemoHostConfig() overridden
// by --host-config FILE and --host KEY=VALUE lines) or Linux under --root (default "/").
absl::StatusOr<std::unique_ptr<platform::Platform>> PlatformFromArgs(const ParsedArgs& args);

// A progress callback writing to stderr; silent when `json` is set. Thread-safe.
staging::StagingProgressFn MakeStagingProgress(bool json);

// Update callbacks that show staging progress as MakeStagingProgress does.
orchestrator::UpdateCallbacks StagingProgressCallbacks(bool json);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
