// `ucodectl stage IMAGE`: validate, select, and push the image through every package's
// staging mailbox while the host keeps running. Activation is `ucodectl load`.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "host/late_load/host_update.h"
#include "proto/json.h"
#include "vmm/orchestrator/report.h"
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
  absl::StatusOr<late_load::HostUpdatePlan> plan =
      late_load::PlanHostUpdate(**platform, std::move(*file), *policy);
  if (!plan.ok()) return fail(plan.status());
  if (!json) std::printf("%s: %s\n", (*platform)->name().c_str(), plan->Describe().c_str());
  staging::StagingOptions options;
  options.progress = MakeStagingProgress(json);
  options.force = args->Has("force");
  staging::StagingReport report = late_load::StageHostUpdate(**platform, *plan, options);
  if (json) {
    orchestrator::UpdateReport staged;
    staged.operation = "stage";
    staged.status = report.all_staged()
                        ? absl::OkStatus()
                        : absl::UnavailableError(absl::StrCat("stage: ", report.Summary()));
    staged.last_step = orchestrator::Step::kStaged;
    orchestrator::SetImage(staged, *plan);
    staged.staging = std::move(report);
    std::printf("%s\n", ProtoJson(orchestrator::ToProto(staged)).c_str());
    return staged.staging->all_staged() ? kExitOk : kExitFailed;
  } else {
    std::fputs(StagingReportText(report).c_str(), stdout);
  }
  return report.all_staged() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
