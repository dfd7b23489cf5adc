// `ucodectl demo`: the whole guest-transparent update on the embedded default: an emulated
// 2x4x2 host (DemoHostConfig, or --host overrides), a generated image one revision newer
// (or --image FILE), and real KVM VMs (ucode-vmm processes) running a guest program.
// Prints progress lines, then the report (table, or JSON with --json).
//
// Every process it starts is stopped on every path, Ctrl-C included: SIGINT/SIGTERM
// cancel the operation (inventory::CancelOnSignal); the main thread then shuts the VMs down
// and exits 130. If the main thread does not get there in time, the watcher kills and
// reaps the VMMs itself. (A VMM also exits when its control socket closes, so even SIGKILL
// of ucodectl leaves nothing parked or running.)
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "host/base/private_files.h"
#include "host/base/status_macros.h"
#include "host/microcode/image_generator.h"
#include "vmm/inventory/cancel_on_signal.h"
#include "vmm/inventory/managed_fleet.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"

namespace ucode::ctl {
namespace {

using inventory::kExitInterrupted;

std::vector<OptionSpec> DemoOptionSpecs() {
  std::vector<OptionSpec> specs;
  for (OptionSpec& s : PlatformOptionSpecs()) {
    if (s.name == "host-config" || s.name == "host" || s.name == "json") specs.push_back(s);
  }
  specs.push_back({.name = "image",
                   .takes_value = true,
                   .help = "microcode file or bundle (default: generate one revision newer)"});
  specs.push_back({.name = "image-kib",
                   .takes_value = true,
                   .help = "size of the generated image in KiB (default 64)"});
  specs.push_back({.name = "vms", .takes_value = true, .help = "ucode-vmm processes (default 4)"});
  specs.push_back({.name = "vcpus", .takes_value = true, .help = "vCPUs per VM (default 2)"});
  specs.push_back({.name = "program",
                   .takes_value = true,
                   .help = "guest program: spin (default), cli-spin, halt, exit-storm"});
  specs.push_back({.name = "mode", .takes_value = true, .help = "strict (default) or fast"});
  specs.push_back({.name = "help", .takes_value = false, .help = "this text"});
  return specs;
}

// The image: --image FILE, or a generated one a revision newer than the host runs.
absl::StatusOr<std::vector<uint8_t>> DemoImage(const ParsedArgs& args, platform::Platform& host) {
  if (std::optional<std::string> path = args.Value("image")) return microcode::ReadFileBytes(*path);
  ASSIGN_OR_RETURN(int kib, IntOption(args, "image-kib", 64, 1, 4096));
  ASSIGN_OR_RETURN(microcode::CpuIdentity cpu, host.Identity(0));
  microcode::GeneratorOptions g;
  g.signature = cpu.signature;
  g.platform_flags = 1u << cpu.platform_id;
  g.revision = cpu.current_revision + 1;
  g.min_req_revision = cpu.current_revision;
  g.data_size = static_cast<size_t>(kib) * 1024 - microcode::kHeaderSize;
  return microcode::GenerateImage(g);
}

}  // namespace

int RunDemo(const std::vector<std::string>& raw) {
  const std::vector<OptionSpec> specs = DemoOptionSpecs();
  static constexpr CommandSyntax kSyntax = {"demo", "demo [options]", ""};
  absl::StatusOr<ParsedArgs> args = ParseArgs(raw, specs);
  if (!args.ok()) return PrintUsage(kSyntax, specs, args.status().message());
  if (args->Has("help")) return PrintUsage(kSyntax, specs, "");
  if (!args->positional().empty()) return PrintUsage(kSyntax, specs, "takes no arguments");
  const bool json = args->Has("json");
  auto Fail = [](bool json, const absl::Status& s) { return ReportFailure("demo", json, s); };
  absl::StatusOr<int> vms = IntOption(*args, "vms", 4, 1, rendezvous::kMaxVms);
  if (!vms.ok()) return Fail(json, vms.status());
  absl::StatusOr<int> vcpus = IntOption(*args, "vcpus", 2, 1, rendezvous::kMaxVcpusPerVm);
  if (!vcpus.ok()) return Fail(json, vcpus.status());
  const std::string program = args->ValueOr("program", "spin");
  absl::StatusOr<orchestrator::UpdateMode> mode = UpdateModeFromArgs(*args);
  if (!mode.ok()) return Fail(json, mode.status());

  // Before any thread exists; the VMMs are killed if main is not done 3 s after a signal.
  inventory::CancelOnSignal watcher("ucodectl demo", "stopping every VM", absl::Seconds(3));
  ProgressLines progress(json);
  absl::StatusOr<std::unique_ptr<platform::Platform>> host = PlatformFromArgs(*args);
  if (!host.ok()) return Fail(json, host.status());
  absl::StatusOr<std::vector<uint8_t>> image = DemoImage(*args, **host);
  if (!image.ok()) return Fail(json, image.status());
  absl::StatusOr<microcode::CpuIdentity> cpu = (*host)->Identity(0);
  if (!cpu.ok()) return Fail(json, cpu.status());

  // A fresh 0700 directory nobody else can have planted.
  absl::StatusOr<std::string> made_log_dir = MakePrivateDir("", "ucode-demo-");
  if (!made_log_dir.ok()) return Fail(json, made_log_dir.status());
  const std::string& log_dir = *made_log_dir;
  progress.Line(absl::StrCat("starting ", *vms, " ucode-vmm x ", *vcpus, " vCPUs (", program,
                             ") on an emulated host; VMM logs in ", log_dir));
  absl::StatusOr<std::unique_ptr<inventory::ManagedFleet>> fleet =
      inventory::ManagedFleet::Start({.vms = *vms, .vcpus = *vcpus, .program = program},
                                     cpu->current_revision, {.log_dir = log_dir});
  if (!fleet.ok()) {
    watcher.MainDone();
    return watcher.cancelled() ? kExitInterrupted : Fail(json, fleet.status());
  }
  watcher.Publish((*fleet)->pids());

  orchestrator::GuestGroup* groups[] = {&(*fleet)->group()};
  orchestrator::UpdateOptions options;
  options.operation = absl::StrCat("demo-", getpid());
  options.mode = *mode;
  orchestrator::UpdateReport report =
      orchestrator::RunUpdate(**host, std::move(*image), groups, options,
                              progress.Callbacks([&] { return watcher.cancelled(); }));
  progress.Flush();
  absl::Status stopped = (*fleet)->Shutdown();
  watcher.MainDone();
  if (stopped.ok()) std::filesystem::remove_all(log_dir);
  if (watcher.cancelled()) return kExitInterrupted;
  PrintReport(report, json);
  return report.status.ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
