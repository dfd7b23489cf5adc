// `ucodectl demo`: the whole guest-transparent update on the embedded default: an emulated
// 2x4x2 host (DemoHostConfig, or --host overrides), a generated image one revision newer
// (or --image FILE), and real KVM VMs (ucode-vmm processes) running a guest program.
// Prints progress lines, then the report (table, or JSON with --json).
//
// Every process it starts is stopped on every path, Ctrl-C included: SIGINT/SIGTERM are
// taken by a watcher thread (sigwait) that cancels the operation; the main thread then
// shuts the VMs down and exits 130. If the main thread does not get there in time, the
// watcher kills and reaps the VMMs itself. (A VMM also exits when its control socket
// closes, so even SIGKILL of ucodectl leaves nothing parked or running.)
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "host/base/private_files.h"
#include "host/base/status_macros.h"
#include "host/microcode/image_generator.h"
#include "proto/json.h"
#include "vmm/orchestrator/coordinator_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"

namespace ucode::ctl {
namespace {

constexpr int kExitInterrupted = 130;  // 128 + SIGINT, as shells report it

// The Ctrl-C path (see the file comment). Construct before any other thread starts so
// that every thread inherits the blocked mask.
class InterruptWatcher {
 public:
  InterruptWatcher() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::thread([this] { Watch(); }).detach();
  }
  [[nodiscard]] bool interrupted() const { return interrupted_.load(); }
  void Publish(std::vector<pid_t> pids) {
    absl::MutexLock lock(&mu_);
    pids_ = std::move(pids);
  }
  void MainDone() { main_done_.Notify(); }

 private:
  void Watch() {
    int sig = 0;
    if (sigwait(&set_, &sig) != 0) return;
    interrupted_.store(true);
    std::fprintf(stderr, "\nucodectl demo: %s: stopping every VM\n", strsignal(sig));
    if (main_done_.WaitForNotificationWithTimeout(absl::Seconds(3))) return;
    std::vector<pid_t> pids;
    {
      absl::MutexLock lock(&mu_);
      pids = pids_;
    }
    for (pid_t p : pids) kill(p, SIGKILL);
    for (pid_t p : pids) waitpid(p, nullptr, 0);
    _exit(kExitInterrupted);
  }

  sigset_t set_;
  std::atomic<bool> interrupted_{false};
  absl::Notification main_done_;
  absl::Mutex mu_;
  std::vector<pid_t> pids_ ABSL_GUARDED_BY(mu_);
};

// Progress lines on stderr. Lines emitted while vCPUs are parked are held back and
// printed after the release, so that terminal output never lengthens the blackout.
class ProgressLines {
 public:
  explicit ProgressLines(bool json) : json_(json), staging_(MakeStagingProgress(json)) {}
  void Emit(orchestrator::Step step, absl::string_view message,
            const staging::StagingProgress* staging) {
    if (json_) return;
    if (staging != nullptr) {
      if (staging_) staging_(*staging);
      return;
    }
    std::string line =
        absl::StrFormat("[%7.3fs] %-16s %s\n", absl::ToDoubleSeconds(absl::Now() - start_),
                        orchestrator::StepName(step), message);
    absl::MutexLock lock(&mu_);
    held_ += line;
    if (step == orchestrator::Step::kParked) holding_ = true;
    if (step == orchestrator::Step::kReleased) holding_ = false;
    if (!holding_) FlushLocked();
  }
  void Line(absl::string_view text) {
    if (json_) return;
    absl::MutexLock lock(&mu_);
    FlushLocked();
    std::fprintf(stderr, "[%7.3fs] %s\n", absl::ToDoubleSeconds(absl::Now() - start_),
                 std::string(text).c_str());
  }
  void Flush() {
    absl::MutexLock lock(&mu_);
    FlushLocked();
  }

 private:
  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::fputs(held_.c_str(), stderr);
    held_.clear();
  }
  const bool json_;
  const absl::Time start_ = absl::Now();
  staging::StagingProgressFn staging_;
  absl::Mutex mu_;
  std::string held_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
};

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

absl::StatusOr<int> IntOption(const ParsedArgs& args, absl::string_view name, int fallback, int lo,
                              int hi) {
  std::string text = args.ValueOr(name, absl::StrCat(fallback));
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " ", text, ": expected ", lo, "..", hi));
  }
  return v;
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
  const std::string mode = args->ValueOr("mode", "strict");
  if (mode != "strict" && mode != "fast") {
    return Fail(json, absl::InvalidArgumentError("--mode: expected strict or fast"));
  }

  InterruptWatcher watcher;  // before any thread exists
  ProgressLines progress(json);
  absl::StatusOr<std::unique_ptr<platform::Platform>> host = PlatformFromArgs(*args);
  if (!host.ok()) return Fail(json, host.status());
  absl::StatusOr<std::vector<uint8_t>> image = DemoImage(*args, **host);
  if (!image.ok()) return Fail(json, image.status());
  absl::StatusOr<microcode::CpuIdentity> cpu = (*host)->Identity(0);
  if (!cpu.ok()) return Fail(json, cpu.status());

  std::vector<rendezvous::VmSpec> fleet;
  for (int i = 0; i < *vms; ++i) {
    fleet.push_back({.name = absl::StrCat("vm", i),
                     .program = program,
                     .vcpus = *vcpus,
                     .initial_revision = cpu->current_revision});
  }
  // A fresh 0700 directory nobody else can have planted (the VMMs create their logs in it
  // with O_EXCL | O_NOFOLLOW, vmm_process.cc).
  absl::StatusOr<std::string> made_log_dir = MakePrivateDir("", "ucode-demo-");
  if (!made_log_dir.ok()) return Fail(json, made_log_dir.status());
  const std::string& log_dir = *made_log_dir;
  progress.Line(absl::StrCat("starting ", *vms, " ucode-vmm x ", *vcpus, " vCPUs (", program,
                             ") on an emulated host; VMM logs in ", log_dir));
  rendezvous::CoordinatorOptions copts;
  copts.log_dir = log_dir;
  absl::StatusOr<std::unique_ptr<rendezvous::Coordinator>> coordinator =
      rendezvous::Coordinator::Start(fleet, copts);
  if (!coordinator.ok()) {
    watcher.MainDone();
    return watcher.interrupted() ? kExitInterrupted : Fail(json, coordinator.status());
  }
  watcher.Publish((*coordinator)->pids());

  orchestrator::CoordinatorGuestGroup group(**coordinator, fleet);
  orchestrator::GuestGroup* groups[] = {&group};
  orchestrator::UpdateOptions options;
  options.operation = absl::StrCat("demo-", getpid());
  options.mode =
      mode == "fast" ? orchestrator::UpdateMode::kFast : orchestrator::UpdateMode::kStrict;
  orchestrator::UpdateCallbacks callbacks;
  callbacks.emit = [&](orchestrator::Step s, absl::string_view m,
                       const staging::StagingProgress* p) { progress.Emit(s, m, p); };
  callbacks.cancelled = [&] { return watcher.interrupted(); };
  orchestrator::UpdateReport report =
      orchestrator::RunUpdate(**host, std::move(*image), groups, options, callbacks);
  progress.Flush();
  absl::Status stopped = (*coordinator)->Shutdown();
  watcher.MainDone();
  if (stopped.ok()) std::filesystem::remove_all(log_dir);
  if (watcher.interrupted()) return kExitInterrupted;
  const ucode::v1::UpdateReport typed = orchestrator::ToProto(report);
  if (json) {
    std::printf("%s\n", ProtoJson(typed).c_str());
  } else {
    std::printf("\n%s", orchestrator::ReportText(typed).c_str());
  }
  return report.status.ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
