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
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"
#include "vmm/inventory/cancel_on_signal.h"
#include "vmm/inventory/libvirt_guests.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/host_command_support.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

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
  ASSIGN_OR_RETURN(int ms, IntOption(args, name, fallback, 1, 600000, " ms"));
  return absl::Milliseconds(ms);
}

int Fail(bool json, const absl::Status& s) { return ReportFailure("apply", json, s); }

struct ApplyArgs {
  std::string image;
  libvirt::DomainSelector selector;
  orchestrator::UpdateOptions options;
  inventory::LibvirtHold hold;
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
  orchestrator::UpdateOptions& o = out.options;
  ASSIGN_OR_RETURN(o.mode, UpdateModeFromArgs(args));
  ASSIGN_OR_RETURN(o.policy, MinRevPolicyFromArgs(args));
  ASSIGN_OR_RETURN(o.agent_timeout, MillisOption(args, "agent-timeout", 2000));
  // virDomainSuspend goes through libvirtd and QEMU's monitor: milliseconds to tens of
  // milliseconds, not the microseconds of our own rendezvous.
  ASSIGN_OR_RETURN(o.park_deadline, MillisOption(args, "park-timeout", 5000));
  o.step_deadline = o.park_deadline;
  RETURN_IF_ERROR(orchestrator::ParsePauseMode(args.ValueOr("pause", "auto"), &out.hold.pause));
  ASSIGN_OR_RETURN(out.hold.deadman, MillisOption(args, "deadman", 2000));
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

  // Before any thread (libvirt's event loop) starts.
  inventory::CancelOnSignal cancel("ucodectl apply",
                                   "cancelling; any parked domain is resumed first");
  ProgressLines progress(json);
  absl::StatusOr<std::unique_ptr<platform::Platform>> host = PlatformFromArgs(*args);
  if (!host.ok()) return Fail(json, host.status());
  absl::StatusOr<std::vector<uint8_t>> image = microcode::ReadFileBytes(apply->image);
  if (!image.ok()) return Fail(json, image.status());

  const std::string uri =
      Globals().connect_uri.empty() ? std::string(libvirt::kDefaultUri) : Globals().connect_uri;
  absl::StatusOr<std::unique_ptr<inventory::LibvirtGuests>> guests =
      inventory::LibvirtGuests::Open(uri, apply->selector, apply->hold);
  if (!guests.ok()) return Fail(json, guests.status());
  absl::StatusOr<inventory::LibvirtApplyGroup> group =
      (*guests)->Group({}, orchestrator::UpdateModeName(apply->options.mode), /*operation=*/"");
  if (!group.ok()) return Fail(json, group.status());
  std::vector<orchestrator::GuestGroup*> groups;
  std::vector<std::string> names;
  if (group->group != nullptr) {
    groups.push_back(group->group.get());
    names = group->group->names();
  }
  progress.Line(absl::StrCat(
      uri, ": ", names.size(), " domain(s)",
      names.empty() ? " (host only)" : absl::StrCat(": ", absl::StrJoin(names, ", "))));

  orchestrator::UpdateReport report =
      orchestrator::RunUpdate(**host, *std::move(image), groups, apply->options,
                              progress.Callbacks([&] { return cancel.cancelled(); }));
  progress.Flush();
  PrintReport(report, json);
  if (cancel.cancelled() && !report.status.ok()) return inventory::kExitInterrupted;
  return report.status.ok() ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
