#include "host/late_load/late_load.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "host/base/status_macros.h"
#include "host/late_load/stop_machine.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"

namespace ucode::late_load {
namespace {

// Kernel setup_cpus(): every present CPU must be online, except an SMT sibling whose
// primary thread is online (it is brought in by NMI). Otherwise reload fails with -EBUSY.
absl::Status CheckCpusLoadable(const platform::Topology& topology) {
  for (const platform::LogicalCpu& c : topology.cpus) {
    if (c.online) continue;
    if (c.thread == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cpu %d (a core's primary thread) is offline: loading aborted (kernel: -EBUSY)", c.id));
    }
    // An offline sibling's core is known to the emulated host; on Linux the kernel checks.
    if (c.package >= 0) {
      bool primary_online = false;
      for (const platform::LogicalCpu& p : topology.cpus) {
        primary_online |= p.online && p.thread == 0 && p.package == c.package && p.core == c.core;
      }
      if (!primary_online) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "cpu %d is offline and so is its core's primary thread: loading aborted", c.id));
      }
    }
  }
  return absl::OkStatus();
}

// Linux: the kernel did the rendezvous; account per CPU from the revisions it now reports.
void AccountFromRevisions(platform::Platform& platform, const platform::Topology& topology,
                          LateLoadResult& result) {
  for (const platform::LogicalCpu& c : topology.cpus) {
    CpuResult r{.cpu = c.id};
    if (!c.online) {
      r.outcome = CpuOutcome::kOffline;
    } else if (absl::StatusOr<uint32_t> rev = platform::ReadRevision(platform, c.id); !rev.ok()) {
      r.detail = std::string(rev.status().message());
    } else {
      r.revision_after = *rev;
      if (!microcode::IsNewerRevision(result.new_revision, *rev)) {
        r.outcome = c.thread == 0 ? CpuOutcome::kUpdated : CpuOutcome::kSibling;
      } else {
        r.detail = absl::StrFormat("revision 0x%x after reload, expected 0x%x", *rev,
                                   result.new_revision);
      }
    }
    result.cpus.push_back(r);
  }
}

}  // namespace

const char* CpuOutcomeName(CpuOutcome outcome) {
  switch (outcome) {
    case CpuOutcome::kUpdated: return "updated";
    case CpuOutcome::kSibling: return "sibling";
    case CpuOutcome::kAlreadyCurrent: return "already-current";
    case CpuOutcome::kTimedOut: return "timed-out";
    case CpuOutcome::kFailed: return "failed";
    case CpuOutcome::kOffline: return "offline";
  }
  return "unknown";
}

void Account(LateLoadResult& r, int online_cpus, int offline_cpus) {
  r.updated = r.siblings = r.timed_out = r.failed = r.offline = 0;
  for (const CpuResult& c : r.cpus) {
    switch (c.outcome) {
      case CpuOutcome::kUpdated: ++r.updated; break;
      case CpuOutcome::kSibling:
      case CpuOutcome::kAlreadyCurrent: ++r.siblings; break;  // the kernel's UCODE_OK
      case CpuOutcome::kTimedOut: ++r.timed_out; break;
      case CpuOutcome::kOffline: ++r.offline; break;
      case CpuOutcome::kFailed: ++r.failed; break;
    }
  }
  // The verdicts and wording of load_late_stop_cpus().
  if (r.updated == 0) {
    if (r.failed == 0 && r.timed_out == 0) {
      r.summary = "nothing to update";
      r.status = absl::OkStatus();
    } else if (r.offline < offline_cpus) {
      r.summary = absl::StrFormat("%d offline siblings did not respond", offline_cpus - r.offline);
      r.status = absl::AbortedError(r.summary);
    } else {
      r.summary = absl::StrFormat("update failed: %d CPUs failed %d CPUs timed out", r.failed,
                                  r.timed_out);
      r.status = absl::AbortedError(r.summary);
    }
    return;
  }
  r.summary = absl::StrFormat("updated on %d primary CPUs with %d siblings", r.updated, r.siblings);
  if (r.updated + r.siblings == online_cpus) {
    r.status = absl::OkStatus();
    return;
  }
  absl::StrAppendFormat(&r.summary, "; load incomplete: %d CPUs timed out or failed",
                        online_cpus - (r.updated + r.siblings));
  r.status = absl::InternalError(r.summary);
}

absl::StatusOr<LateLoadResult> RunLateLoad(platform::Platform& platform,
                                           absl::Span<const uint8_t> update,
                                           const LateLoadHooks& hooks,
                                           const LateLoadOptions& options) {
  ASSIGN_OR_RETURN(microcode::MicrocodeImage image, microcode::ParseImage(update));
  ASSIGN_OR_RETURN(platform::Topology topology, platform.GetTopology());
  if (platform.HasDirectTrigger()) RETURN_IF_ERROR(CheckCpusLoadable(topology));
  const std::vector<int> primaries = topology.CorePrimaries();
  if (primaries.empty()) return absl::FailedPreconditionError("no online primary thread");

  LateLoadResult result;
  result.new_revision = image.revision();
  ASSIGN_OR_RETURN(result.old_revision, platform::ReadRevision(platform, primaries.front()));
  const absl::Span<const uint8_t> exact = update.subspan(0, image.total_size());

  // Everything the rendezvous needs exists before anything is held: on the emulated host
  // the stopper threads (created once per process and kept, as the kernel's are) and the
  // prepared rendezvous; on Linux the installed, page-cached firmware file. Between
  // before_activation and the activation only wake-ups, or the reload write, remain.
  std::optional<StopperThreads::Lease> stoppers;
  std::optional<EmulatedStopMachine> machine;
  std::unique_ptr<platform::PreparedKernelReload> prepared;
  if (platform.HasDirectTrigger()) {
    stoppers.emplace(StopperThreads::Acquire(static_cast<int>(topology.cpus.size())));
    machine.emplace(platform, topology, exact, result.new_revision, options, result);
  } else {
    ASSIGN_OR_RETURN(microcode::CpuIdentity cpu, platform.Identity(primaries.front()));
    ASSIGN_OR_RETURN(prepared, platform.PrepareKernelReload(exact, cpu.signature));
    result.prepare = prepared->prepare_time();
    result.window_name = kReloadWriteWindow;
  }

  if (hooks.before_activation) {
    absl::Status held = hooks.before_activation();
    if (!held.ok()) {
      // `prepared`, if any, puts the previous firmware file back as it goes.
      return absl::Status(held.code(),
                          absl::StrFormat("before activation: %s; host untouched", held.message()));
    }
  }
  if (platform.HasDirectTrigger()) {
    machine->Run(stoppers->threads());
  } else {
    absl::StatusOr<platform::KernelReloadOutcome> reload = prepared->Reload();
    if (reload.ok()) {
      result.activation_window = reload->elapsed;
      result.kernel_log = reload->kmsg_lines;
      result.reload = *reload;
    }
    AccountFromRevisions(platform, topology, result);
    if (!reload.ok()) {
      if (hooks.after_activation) hooks.after_activation();
      Account(result, topology.OnlineCount(),
              static_cast<int>(topology.cpus.size()) - topology.OnlineCount());
      result.status = reload.status();
      result.summary = std::string(reload.status().message());
      return result;
    }
  }
  if (hooks.after_activation) hooks.after_activation();
  Account(result, topology.OnlineCount(),
          static_cast<int>(topology.cpus.size()) - topology.OnlineCount());
  return result;
}

}  // namespace ucode::late_load
