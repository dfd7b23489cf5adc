#include "host/late_load/late_load.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"

namespace ucode::late_load {
namespace {

// Fills the counts, status and summary from `r.cpus`, as load_late_stop_cpus() does.
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

}  // namespace

absl::StatusOr<PreparedLateLoad> PrepareLateLoad(platform::Platform& platform,
                                                 absl::Span<const uint8_t> update,
                                                 const platform::ActivationOptions& options) {
  ASSIGN_OR_RETURN(microcode::MicrocodeImage image, microcode::ParseImage(update));
  PreparedLateLoad load;
  ASSIGN_OR_RETURN(load.topology_, platform.GetTopology());
  const std::vector<int> primaries = load.topology_.CorePrimaries();
  if (primaries.empty()) return absl::FailedPreconditionError("no online primary thread");
  LateLoadResult& r = load.result_;
  r.new_revision = image.revision();
  ASSIGN_OR_RETURN(r.old_revision, platform::ReadRevision(platform, primaries.front()));
  r.model_parameters = platform.ActivationModel();
  ASSIGN_OR_RETURN(load.activation_,
                   platform.PrepareActivation(load.topology_,
                                              update.subspan(0, image.total_size()),
                                              r.new_revision, options));
  return load;
}

LateLoadResult PreparedLateLoad::Activate() {
  LateLoadResult& r = result_;
  static_cast<platform::Activation&>(r) = activation_->Activate();
  activation_.reset();
  const int online = topology_.OnlineCount();
  Account(r, online, static_cast<int>(topology_.cpus.size()) - online);
  if (!r.reload_status.ok()) {
    r.status = r.reload_status;
    r.summary = std::string(r.reload_status.message());
  }
  return std::move(r);
}

std::string HostUpdatePlan::Describe() const {
  return absl::StrFormat("%s pf 0x%x: rev 0x%x -> 0x%x (%s), %d KiB",
                         microcode::FirmwareFileName(cpu.signature), image.header.platform_flags,
                         cpu.current_revision, image.revision(), image.DateString(),
                         image.total_size() / 1024);
}

absl::StatusOr<microcode::CpuIdentity> HostIdentity(platform::Platform& platform) {
  ASSIGN_OR_RETURN(platform::Topology topology, platform.GetTopology());
  std::optional<microcode::CpuIdentity> host;
  for (const platform::LogicalCpu& c : topology.cpus) {
    if (!c.online) continue;
    ASSIGN_OR_RETURN(microcode::CpuIdentity id, platform.Identity(c.id));
    if (!host) {
      host = id;
    } else if (id.signature != host->signature || id.platform_id != host->platform_id) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cpu %d is sig 0x%x platform id %u but cpu 0 is sig 0x%x platform id %u: mixed host",
          c.id, id.signature, id.platform_id, host->signature, host->platform_id));
    } else if (microcode::IsNewerRevision(host->current_revision, id.current_revision)) {
      host->current_revision = id.current_revision;  // judge against the oldest CPU
    }
  }
  if (!host) return absl::FailedPreconditionError("no online CPU");
  return *host;
}

absl::StatusOr<bool> HostRunsNewestImage(platform::Platform& platform,
                                         absl::Span<const uint8_t> file) {
  ASSIGN_OR_RETURN(std::vector<microcode::MicrocodeImage> images,
                   microcode::ParseBundleStrict(file));
  ASSIGN_OR_RETURN(microcode::CpuIdentity cpu, HostIdentity(platform));
  std::optional<uint32_t> newest;
  for (const microcode::MicrocodeImage& image : images) {
    if (microcode::MatchImage(image, cpu) == microcode::SignatureMatch::kNone) continue;
    if (!newest || microcode::IsNewerRevision(image.revision(), *newest)) newest = image.revision();
  }
  return newest && *newest == cpu.current_revision;
}

absl::StatusOr<HostUpdatePlan> PlanHostUpdate(platform::Platform& platform,
                                              std::vector<uint8_t> file,
                                              microcode::MinRevPolicy policy) {
  HostUpdatePlan plan;
  plan.file = std::make_unique<std::vector<uint8_t>>(std::move(file));
  ASSIGN_OR_RETURN(std::vector<microcode::MicrocodeImage> images,
                   microcode::ParseBundleStrict(*plan.file));
  ASSIGN_OR_RETURN(plan.cpu, HostIdentity(platform));
  microcode::Selection selection = microcode::SelectImage(images, plan.cpu, policy);
  plan.candidates = selection.candidates;
  if (selection.image == nullptr) {
    std::vector<std::string> reasons;
    for (const microcode::Candidate& c : selection.candidates) reasons.push_back(c.reason);
    return absl::FailedPreconditionError(absl::StrFormat(
        "no image fits this host (sig 0x%x platform id %u rev 0x%x): %s", plan.cpu.signature,
        plan.cpu.platform_id, plan.cpu.current_revision, absl::StrJoin(reasons, "; ")));
  }
  plan.image = *selection.image;
  return plan;
}

absl::Status VerifyHostRevision(platform::Platform& platform, uint32_t revision) {
  ASSIGN_OR_RETURN(platform::Topology topology, platform.GetTopology());
  std::vector<std::string> wrong;
  for (const platform::LogicalCpu& c : topology.cpus) {
    if (!c.online) continue;
    absl::StatusOr<uint32_t> rev = platform::ReadRevision(platform, c.id);
    if (!rev.ok()) {
      wrong.push_back(absl::StrFormat("cpu %d: %s", c.id, rev.status().message()));
    } else if (*rev != revision) {
      wrong.push_back(absl::StrFormat("cpu %d at 0x%x", c.id, *rev));
    }
  }
  if (wrong.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrFormat("verify: %d CPUs not at 0x%x: %s", wrong.size(),
                                             revision, absl::StrJoin(wrong, ", ")));
}

}  // namespace ucode::late_load
