// What the host commands (`stage`, `load`, `demo`, `apply`) share: the platform options,
// progress output (a bar per package on a terminal, plain lines otherwise; step lines held
// back while guests are parked) and JSON helpers.
#ifndef UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
#define UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "host/platform/platform.h"
#include "host/staging/staging_driver.h"
#include "vmm/inventory/held_events.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

// --platform, --host-config, --host KEY=VALUE, --root, --json.
std::vector<OptionSpec> PlatformOptionSpecs();

// The platform the options name: the emulated host (default; DemoHostConfig() overridden
// by --host-config FILE and --host KEY=VALUE lines) or Linux under --root (default "/").
absl::StatusOr<std::unique_ptr<platform::Platform>> PlatformFromArgs(const ParsedArgs& args);

// --NAME N with lo <= N <= hi (`fallback` when absent); the error names the range and
// `unit` ("expected 1..600000 ms").
absl::StatusOr<int> IntOption(const ParsedArgs& args, absl::string_view name, int fallback, int lo,
                              int hi, absl::string_view unit = "");

// --mode: strict (the default) or fast.
absl::StatusOr<orchestrator::UpdateMode> UpdateModeFromArgs(const ParsedArgs& args);

// The update's report on stdout: JSON, or its text after a blank line (below the progress).
void PrintReport(const orchestrator::UpdateReport& report, bool json);

// Progress lines on stderr, "[  1.234s] STEP             message", timed from construction;
// silent when `json` is set. Lines of the held window are printed after the release
// (inventory::HeldEvents), so that terminal output never lengthens the blackout.
class ProgressLines {
 public:
  explicit ProgressLines(bool json);
  // The orchestrator's emit callback (UpdateCallbacks::emit).
  void Emit(orchestrator::Step step, absl::string_view message,
            const staging::StagingProgress* staging);
  // A line of the command's own, after anything held.
  void Line(absl::string_view text);
  void Flush() { events_.Flush(); }
  [[nodiscard]] orchestrator::UpdateCallbacks Callbacks(std::function<bool()> cancelled);

 private:
  const bool json_;
  const absl::Time start_ = absl::Now();
  const staging::StagingProgressFn staging_;
  inventory::HeldEvents events_;
};

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_HOST_COMMAND_SUPPORT_H_
