// What `ucodectl stage` and `ucodectl load` share: the platform options, progress output
// (a bar per package on a terminal, plain lines otherwise) and the staging lines.
#ifndef UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
#define UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "host/platform/platform.h"
#include "host/staging/staging_driver.h"
#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

// --platform, --host-config, --host KEY=VALUE, --root, --json.
std::vector<OptionSpec> PlatformOptionSpecs();

// The platform the options name: the emulated host (default; DemoHostConfig() overridden
// by --host-config FILE and --host KEY=VALUE lines) or Linux under --root (default "/").
absl::StatusOr<std::unique_ptr<platform::Platform>> PlatformFromArgs(const ParsedArgs& args);

// A progress callback writing to stderr; silent when `json` is set. Thread-safe.
staging::StagingProgressFn MakeStagingProgress(bool json);

// The staging report as human lines.
std::string StagingReportText(const staging::StagingReport& report);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
