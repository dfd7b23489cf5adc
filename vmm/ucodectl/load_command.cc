// `ucodectl load IMAGE`: validate, select, stage (opportunistic), activate in the
// stop_machine_nmi-style rendezvous, and verify every CPU's revision.
#include <cstdio>

#include "absl/strings/str_format.h"
#include "host/late_load/host_update.h"
#include "proto/json.h"
#include "vmm/orchestrator/report.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

// The host load as the one update report (no guests): image, staging, host.
ucode::v1::UpdateReport LoadReport(const late_load::HostUpdateReport& r) {
  orchestrator::UpdateReport report;
  report.operation = "load";
  report.status = r.status();
  report.last_step = orchestrator::Step::kVerified;
  report.host_touched = true;
  report.plan = r.plan;
  report.staging = r.staging;
  report.host = r.load;
  return orchestrator::ToProto(report);
}

void PrintLoadText(const late_load::HostUpdateReport& r) {
  const late_load::LateLoadResult& l = r.load.load;
  if (r.staging) std::fputs(StagingReportText(*r.staging).c_str(), stdout);
  std::printf("load: %s\n", l.summary.c_str());
  for (const late_load::CpuResult& c : l.cpus) {
    if (!c.detail.empty()) {
      std::printf("  cpu %d %s: %s\n", c.cpu, late_load::CpuOutcomeName(c.outcome),
                  c.detail.c_str());
    }
  }
  std::printf("revision: 0x%x -> 0x%x\n", l.old_revision, l.new_revision);
  std::printf("%s: %s", l.window_name, absl::FormatDuration(l.activation_window).c_str());
  if (!l.model_parameters.empty()) {
    std::printf(" (modelled critical path %s; %s)",
                absl::FormatDuration(l.modelled_critical_path).c_str(), l.model_parameters.c_str());
  }
  std::printf("\n");
  if (l.reload) std::printf("kernel read: %s\n", l.reload->kernel_path.c_str());
  for (const std::string& line : l.kernel_log) std::printf("kernel: %s\n", line.c_str());
  std::printf("verify: %s\n", r.load.verify.ok() ? "every online CPU reports the new revision"
                                                 : std::string(r.load.verify.message()).c_str());
}

}  // namespace

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
  late_load::HostUpdateOptions options;
  absl::StatusOr<microcode::MinRevPolicy> policy = MinRevPolicyFromArgs(*args);
  if (!policy.ok()) return fail(policy.status());
  options.policy = *policy;
  // The kernel stages by itself on Linux 6.19+; user-space staging is for the emulated host.
  options.stage = !args->Has("no-stage") && (*platform)->HasDirectTrigger();
  options.staging.progress = MakeStagingProgress(json);
  absl::StatusOr<late_load::HostUpdateReport> report =
      late_load::RunHostUpdate(**platform, std::move(*file), options);
  if (!report.ok()) return fail(report.status());
  if (json) {
    std::printf("%s\n", ProtoJson(LoadReport(*report)).c_str());
  } else {
    std::printf("%s: %s\n", (*platform)->name().c_str(), report->plan.c_str());
    PrintLoadText(*report);
  }
  return report->status().ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
