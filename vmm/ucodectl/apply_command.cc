// `ucodectl [-c URI] apply IMAGE [--domain NAME ...| --all] [--mode strict|fast]
//  [--pause freeze|suspend|auto] [--agent-timeout MS] [--json] [platform options]`: the
// guest-transparent update with libvirt domains, the way an operator drives maintenance
// with virsh. Domains are held with the kernel's cgroup freezer on QEMU's vCPU threads
// where the kernel offers one (`--pause auto`, the default), else with virDomainSuspend;
// the report's notes say which and why. The connection URI
// is virsh's (`-c`, default qemu:///system); domains are picked by name or UUID
// (`--domain`, repeatable) or `--all` running ones, and form one LibvirtGuestGroup for the
// orchestrator (vmm/orchestrator/update_operation.h) on the host the platform options name
// (the emulated host by default: a rehearsal that changes no real CPU).
//
// Output: progress lines on stderr (held back while domains are parked), then the report
// (table, or one JSON object with --json) on stdout. Exit 0 when the operation succeeded
// (guest views "stale until restart" included: QEMU cannot change them), 1 when it failed,
// 2 on bad usage, 130 when interrupted before the rendezvous.
//
// SIGINT/SIGTERM never leave a domain paused: they are taken by a watcher thread that
// cancels the operation between steps; a rendezvous under way finishes (bounded by its
// deadlines) and releases every domain first.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"
#include "proto/json.h"
#include "vmm/libvirt/connection.h"
#include "vmm/orchestrator/libvirt_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

constexpr int kExitInterrupted = 130;

// Blocks SIGINT/SIGTERM in every thread (construct before any thread starts) and turns
// the first one into a cancellation request.
class CancelOnSignal {
 public:
  CancelOnSignal() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    std::thread([this] {
      for (;;) {
        int sig = 0;
        if (sigwait(&set_, &sig) != 0) return;
        if (!cancelled_.exchange(true)) {
          std::fprintf(stderr,
                       "\nucodectl apply: %s: cancelling; any parked domain is resumed "
                       "first\n",
                       strsignal(sig));
        }
      }
    }).detach();
  }
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }

 private:
  sigset_t set_;
  std::atomic<bool> cancelled_{false};
};

// Progress on stderr; lines emitted while domains are parked are printed after release.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), staging_(MakeStagingProgress(quiet)) {}
  void Emit(orchestrator::Step step, absl::string_view message,
            const staging::StagingProgress* staging) {
    if (quiet_) return;
    if (staging != nullptr) {
      if (staging_) staging_(*staging);
      return;
    }
    absl::MutexLock lock(&mu_);
    absl::StrAppendFormat(&held_, "[%7.3fs] %-16s %s\n",
                          absl::ToDoubleSeconds(absl::Now() - start_), orchestrator::StepName(step),
                          message);
    if (step == orchestrator::Step::kParked) holding_ = true;
    if (step == orchestrator::Step::kReleased) holding_ = false;
    if (!holding_) Flush();
  }
  void Line(absl::string_view text) {
    if (quiet_) return;
    absl::MutexLock lock(&mu_);
    absl::StrAppendFormat(&held_, "[%7.3fs] %s\n", absl::ToDoubleSeconds(absl::Now() - start_),
                          text);
    Flush();
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    Flush();
  }

 private:
  void Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::fputs(held_.c_str(), stderr);
    held_.clear();
  }
  const bool quiet_;
  const absl::Time start_ = absl::Now();
  staging::StagingProgressFn staging_;
  absl::Mutex mu_;
  std::string held_ ABSL_GUARDED_BY(mu_);
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
};

std::vector<OptionSpec> ApplyOptionSpecs() {
  std::vector<OptionSpec> specs = {
      {.name = "domain",
       .takes_value = true,
       .repeatable = true,
       .help = "domain name or UUID (repeatable)"},
      {.name = "all", .takes_value = false, .help = "every running domain"},
      {.name = "mode", .takes_value = true, .help = "strict (default) or fast"},
      {.name = "pause",
       .takes_value = true,
       .help = "freeze (kernel cgroup freezer), suspend (libvirt) or auto (default: freeze "
               "where the kernel can)"},
      {.name = "deadman",
       .takes_value = true,
       .help = "a frozen domain is thawed after this long even if ucodectl dies, ms "
               "(default 2000)"},
      {.name = "agent-timeout",
       .takes_value = true,
       .help = "total wait for guest agents per notification, ms (default 2000)"},
      {.name = "park-timeout",
       .takes_value = true,
       .help = "deadline for holding (and releasing) every domain, ms (default 5000)"},
      {.name = "help", .takes_value = false, .help = "this text"},
  };
  for (OptionSpec& s : PlatformOptionSpecs()) specs.push_back(s);
  AppendMinRevOptionSpecs(specs);
  return specs;
}

constexpr CommandSyntax kSyntax = {
    "apply", "[-c URI] apply IMAGE (--domain NAME ... | --all) [options]",
    "Updates the host's microcode around the selected libvirt domains: holds their\n"
    "vCPUs (kernel freezer, or libvirt suspend), loads, releases them and tells their\n"
    "guest agents (ucode-agent)."};

int Usage(const std::vector<OptionSpec>& specs, absl::string_view error) {
  return PrintUsage(kSyntax, specs, error);
}

absl::StatusOr<absl::Duration> MillisOption(const ParsedArgs& args, absl::string_view name,
                                            int fallback) {
  const std::string text = args.ValueOr(name, absl::StrCat(fallback));
  int ms = 0;
  if (!absl::SimpleAtoi(text, &ms) || ms < 1 || ms > 600000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " ", text, ": expected 1..600000 ms"));
  }
  return absl::Milliseconds(ms);
}

int Fail(bool json, const absl::Status& s) { return ReportFailure("apply", json, s); }

struct ApplyArgs {
  std::string image;
  libvirt::DomainSelector selector;
  orchestrator::UpdateOptions options;
  orchestrator::PauseMode pause = orchestrator::PauseMode::kAuto;
  absl::Duration deadman;
};

// Everything that is a usage error (exit 2) is found here, before anything is touched.
absl::StatusOr<ApplyArgs> ReadArgs(const ParsedArgs& args) {
  ApplyArgs out;
  if (args.positional().size() != 1) {
    return absl::InvalidArgumentError("expected exactly one IMAGE (file or bundle)");
  }
  out.image = args.positional()[0];
  out.selector.names_or_uuids = args.Values("domain");
  out.selector.all_running = args.Has("all");
  if (out.selector.all_running == !out.selector.names_or_uuids.empty()) {
    return absl::InvalidArgumentError("give either --domain NAME (repeatable) or --all");
  }
  const std::string mode = args.ValueOr("mode", "strict");
  if (mode != "strict" && mode != "fast") {
    return absl::InvalidArgumentError(absl::StrCat("--mode ", mode, ": expected strict or fast"));
  }
  orchestrator::UpdateOptions& o = out.options;
  o.mode = mode == "fast" ? orchestrator::UpdateMode::kFast : orchestrator::UpdateMode::kStrict;
  ASSIGN_OR_RETURN(o.policy, MinRevPolicyFromArgs(args));
  ASSIGN_OR_RETURN(o.agent_timeout, MillisOption(args, "agent-timeout", 2000));
  // virDomainSuspend goes through libvirtd and QEMU's monitor: milliseconds to tens of
  // milliseconds, not the microseconds of our own rendezvous.
  ASSIGN_OR_RETURN(o.park_deadline, MillisOption(args, "park-timeout", 5000));
  o.step_deadline = o.park_deadline;
  RETURN_IF_ERROR(orchestrator::ParsePauseMode(args.ValueOr("pause", "auto"), &out.pause));
  ASSIGN_OR_RETURN(out.deadman, MillisOption(args, "deadman", 2000));
  o.operation = absl::StrCat("apply-", getpid());
  return out;
}

}  // namespace

int RunApply(const std::vector<std::string>& raw) {
  const std::vector<OptionSpec> specs = ApplyOptionSpecs();
  absl::StatusOr<ParsedArgs> args = ParseArgs(raw, specs);
  if (!args.ok()) return Usage(specs, args.status().message());
  if (args->Has("help")) return Usage(specs, "");
  absl::StatusOr<ApplyArgs> apply = ReadArgs(*args);
  if (!apply.ok()) return Usage(specs, apply.status().message());
  const bool json = args->Has("json");

  CancelOnSignal cancel;  // before any thread (libvirt's event loop) starts
  Progress progress(json);
  absl::StatusOr<std::unique_ptr<platform::Platform>> host = PlatformFromArgs(*args);
  if (!host.ok()) return Fail(json, host.status());
  absl::StatusOr<std::vector<uint8_t>> image = microcode::ReadFileBytes(apply->image);
  if (!image.ok()) return Fail(json, image.status());

  const std::string uri =
      Globals().connect_uri.empty() ? std::string(libvirt::kDefaultUri) : Globals().connect_uri;
  absl::StatusOr<std::unique_ptr<libvirt::Connection>> conn = libvirt::Connection::Open(uri);
  if (!conn.ok()) return Fail(json, conn.status());
  absl::StatusOr<std::vector<libvirt::Domain>> domains = (*conn)->ListDomains(apply->selector);
  if (!domains.ok()) return Fail(json, domains.status());
  std::string names;
  for (const libvirt::Domain& d : *domains)
    absl::StrAppend(&names, names.empty() ? "" : ", ", d.name());
  progress.Line(absl::StrCat(uri, ": ", domains->size(), " domain(s)",
                             names.empty() ? " (host only)" : absl::StrCat(": ", names)));

  const std::string mode = orchestrator::UpdateModeName(apply->options.mode);
  orchestrator::LibvirtGroupOptions group_options{.mode = mode, .pause = apply->pause};
  group_options.freeze.hold_limit = apply->deadman;
  absl::StatusOr<std::unique_ptr<orchestrator::LibvirtGuestGroup>> group =
      orchestrator::LibvirtGuestGroup::Create(**conn, *std::move(domains), group_options);
  if (!group.ok()) return Fail(json, group.status());
  std::vector<orchestrator::GuestGroup*> groups;
  if (!(*group)->names().empty()) groups.push_back(group->get());

  orchestrator::UpdateCallbacks callbacks;
  callbacks.emit = [&](orchestrator::Step s, absl::string_view m,
                       const staging::StagingProgress* p) { progress.Emit(s, m, p); };
  callbacks.cancelled = [&] { return cancel.cancelled(); };
  orchestrator::UpdateReport report =
      orchestrator::RunUpdate(**host, *std::move(image), groups, apply->options, callbacks);
  progress.Done();
  const ucode::v1::UpdateReport typed = orchestrator::ToProto(report);
  if (json) {
    std::printf("%s\n", ProtoJson(typed).c_str());
  } else {
    std::printf("\n%s", orchestrator::ReportText(typed).c_str());
  }
  if (cancel.cancelled() && !report.status.ok()) return kExitInterrupted;
  return report.status.ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
