// `ucodectl stage IMAGE` and `ucodectl load IMAGE`: the update with no VMs on this host.
// stage validates, selects and pushes the image through every package's staging mailbox
// while the host keeps running (orchestrator::StageUpdate); load also activates it in the
// stop_machine_nmi-style rendezvous and verifies every CPU (orchestrator::RunUpdate). Both
// print the update report.
#include <cstdio>

#include "proto/json.h"
#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

// IMAGE and the platform options (plus `extra`), then the update (`load`: the whole host
// load; otherwise staging only), then its report.
int RunHostCommand(const std::vector<std::string>& raw, const CommandSyntax& syntax,
                   const OptionSpec& extra, bool load) {
  std::vector<OptionSpec> specs = PlatformOptionSpecs();
  AppendMinRevOptionSpecs(specs);
  specs.push_back(extra);
  specs.push_back({.name = "help", .takes_value = false, .help = "this text"});
  absl::StatusOr<ParsedArgs> args = ParseArgs(raw, specs);
  if (!args.ok()) return PrintUsage(syntax, specs, args.status().message());
  if (args->Has("help")) return PrintUsage(syntax, specs, "");
  if (args->positional().size() != 1) return PrintUsage(syntax, specs, "expected one IMAGE");
  const bool json = args->Has("json");
  auto fail = [&](const absl::Status& s) { return ReportFailure(syntax.name, json, s); };
  absl::StatusOr<std::unique_ptr<platform::Platform>> platform = PlatformFromArgs(*args);
  if (!platform.ok()) return fail(platform.status());
  absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(args->positional()[0]);
  if (!file.ok()) return fail(file.status());
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(*args);
  if (!policy.ok()) return fail(policy.status());
  orchestrator::UpdateOptions options;
  options.operation = syntax.name;
  options.policy = *policy;
  options.stage = !args->Has("no-stage");
  options.staging.force = args->Has("force");
  ProgressLines progress(json);
  const orchestrator::UpdateCallbacks callbacks = progress.Callbacks(nullptr);
  orchestrator::UpdateReport report =
      load ? orchestrator::RunUpdate(**platform, std::move(*file), {}, options, callbacks)
           : orchestrator::StageUpdate(**platform, std::move(*file), options, callbacks);
  progress.Flush();
  // Nothing validated: the command's own failure line, as for a bad argument.
  if (report.last_step == v1::STEP_UNSPECIFIED) return fail(report.status);
  const ucode::v1::UpdateReport typed = orchestrator::ToProto(report);
  std::fputs(json ? (ProtoJson(typed) + "\n").c_str() : orchestrator::ReportText(typed).c_str(),
             stdout);
  const bool ok = load ? report.status.ok() : report.staging && report.staging->all_staged();
  return ok ? kExitOk : kExitFailed;
}

}  // namespace

int RunStage(const std::vector<std::string>& raw) {
  static constexpr CommandSyntax kSyntax = {"stage", "stage IMAGE [options]", ""};
  return RunHostCommand(raw, kSyntax,
                        {.name = "force",
                         .takes_value = false,
                         .help = "stage even where the kernel stages by itself (Linux 6.19+)"},
                        /*load=*/false);
}

int RunLoad(const std::vector<std::string>& raw) {
  static constexpr CommandSyntax kSyntax = {"load", "load IMAGE [options]", ""};
  return RunHostCommand(raw, kSyntax,
                        {.name = "no-stage", .takes_value = false, .help = "skip staging"},
                        /*load=*/true);
}

}  // namespace ucode::ctl
