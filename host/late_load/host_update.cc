#include "host/late_load/host_update.h"

#include <optional>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"

namespace ucode::late_load {

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
