#include "host/late_load/late_load.h"

#include "absl/strings/str_format.h"
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

}  // namespace ucode::late_load
