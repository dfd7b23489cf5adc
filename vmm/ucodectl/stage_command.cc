// `ucodectl stage IMAGE`: validate, select, and push the image through every package's
// staging mailbox while the host keeps running (orchestrator::StageUpdate). Activation is
// `ucodectl load`. Prints the update report; fails unless every package staged.
#include <cstdio>

#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {

int RunStage(const std::vector<std::string>& raw) {
  std::vector<OptionSpec> specs = PlatformOptionSpecs();
  AppendMinRevOptionSpecs(specs);
  specs.push_back({.name = "force",
                   .takes_value = false,
                   .help = "stage even where the kernel stages by itself (Linux 6.19+)"});
  specs.push_back({.name = "help", .takes_value = false, .help = "this text"});
  static constexpr CommandSyntax kSyntax = {"stage", "stage IMAGE [options]", ""};
  absl::StatusOr<ParsedArgs> args = ParseArgs(raw, specs);
  if (!args.ok()) return PrintUsage(kSyntax, specs, args.status().message());
  if (args->Has("help")) return PrintUsage(kSyntax, specs, "");
  if (args->positional().size() != 1) return PrintUsage(kSyntax, specs, "expected one IMAGE");
  const bool json = args->Has("json");
  auto fail = [&](const absl::Status& s) { return ReportFailure("stage", json, s); };
  absl::StatusOr<std::unique_ptr<platform::Platform>> platform = PlatformFromArgs(*args);
  if (!platform.ok()) return fail(platform.status());
  absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(args->positional()[0]);
  if (!file.ok()) return fail(file.status());
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(*args);
  if (!policy.ok()) return fail(policy.status());
  orchestrator::UpdateOptions options;
  options.operation = "stage";
  options.policy = *policy;
  options.staging.force = args->Has("force");
  orchestrator::UpdateReport report = orchestrator::StageUpdate(
      **platform, std::move(*file), options, StagingProgressCallbacks(json));
  // Nothing validated: the command's own failure line, as for a bad argument.
  if (report.last_step == orchestrator::Step::kUnspecified) return fail(report.status);
  std::printf("%s\n", json ? orchestrator::ReportJson(report).c_str()
                           : orchestrator::ReportText(report).c_str());
  return report.staging && report.staging->all_staged() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
