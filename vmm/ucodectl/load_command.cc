// `ucodectl load IMAGE`: the host-only update (orchestrator::RunUpdate with no VMs):
// validate, select, stage (opportunistic), activate in the stop_machine_nmi-style
// rendezvous, and verify every CPU's revision. Prints the update report.
#include <cstdio>

#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {

int RunLoad(const std::vector<std::string>& raw) {
  std::vector<OptionSpec> specs = PlatformOptionSpecs();
  AppendMinRevOptionSpecs(specs);
  specs.push_back({.name = "no-stage", .takes_value = false, .help = "skip staging"});
  specs.push_back({.name = "help", .takes_value = false, .help = "this text"});
  static constexpr CommandSyntax kSyntax = {"load", "load IMAGE [options]", ""};
  absl::StatusOr<ParsedArgs> args = ParseArgs(raw, specs);
  if (!args.ok()) return PrintUsage(kSyntax, specs, args.status().message());
  if (args->Has("help")) return PrintUsage(kSyntax, specs, "");
  if (args->positional().size() != 1) return PrintUsage(kSyntax, specs, "expected one IMAGE");
  const bool json = args->Has("json");
  auto fail = [&](const absl::Status& s) { return ReportFailure("load", json, s); };
  absl::StatusOr<std::unique_ptr<platform::Platform>> platform = PlatformFromArgs(*args);
  if (!platform.ok()) return fail(platform.status());
  absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(args->positional()[0]);
  if (!file.ok()) return fail(file.status());
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(*args);
  if (!policy.ok()) return fail(policy.status());
  orchestrator::UpdateOptions options;
  options.operation = "load";
  options.policy = *policy;
  options.stage = !args->Has("no-stage");
  orchestrator::UpdateReport report = orchestrator::RunUpdate(
      **platform, std::move(*file), {}, options, StagingProgressCallbacks(json));
  // Nothing validated: the command's own failure line, as for a bad argument.
  if (report.last_step == orchestrator::Step::kUnspecified) return fail(report.status);
  std::printf("%s\n", json ? orchestrator::ReportJson(report).c_str()
                           : orchestrator::ReportText(report).c_str());
  return report.status.ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
