// The host half of a microcode update, as the orchestrator's steps use it
// (vmm/orchestrator/update_operation.cc; a host-only load is RunUpdate with no groups):
// PlanHostUpdate validates the file and selects the image for this host; the host's
// identity and revision checks around the load.
#ifndef UCODE_HOST_LATE_LOAD_HOST_UPDATE_H_
#define UCODE_HOST_LATE_LOAD_HOST_UPDATE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "host/late_load/late_load.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"
#include "host/platform/platform.h"

namespace ucode::late_load {

// A selected image and the bytes it views. Move-only: `image` points into `file`.
struct HostUpdatePlan {
  HostUpdatePlan() = default;
  HostUpdatePlan(HostUpdatePlan&&) = default;
  HostUpdatePlan& operator=(HostUpdatePlan&&) = default;
  HostUpdatePlan(const HostUpdatePlan&) = delete;
  HostUpdatePlan& operator=(const HostUpdatePlan&) = delete;

  std::unique_ptr<std::vector<uint8_t>> file;  // the whole file or bundle
  microcode::MicrocodeImage image;             // the selected member
  microcode::CpuIdentity cpu;                  // the host's CPUs (all must agree)
  std::vector<microcode::Candidate> candidates;

  // The selected image's exact bytes.
  [[nodiscard]] absl::Span<const uint8_t> update() const { return image.bytes; }
  // "06-8f-08 rev 0x2b000000 -> 0x2b000639 (2025-07-03), 1.2 MiB"
  [[nodiscard]] std::string Describe() const;
};

// Parses every image in `file`, reads every online CPU's identity (they must share
// signature and platform id), and selects the image the kernel would. Refuses, with each
// candidate's reason, when nothing fits or nothing is newer.
absl::StatusOr<HostUpdatePlan> PlanHostUpdate(platform::Platform& platform,
                                              std::vector<uint8_t> file,
                                              microcode::MinRevPolicy policy);

// Every online CPU's identity; they must share signature and platform id. The revision is
// the lowest any CPU runs (judge against the oldest CPU).
absl::StatusOr<microcode::CpuIdentity> HostIdentity(platform::Platform& platform);

// True when the host already runs the newest image in `file` that fits it (nothing in
// the file is newer than what every CPU runs): the update is done on the host, only guest
// views may lag.
absl::StatusOr<bool> HostRunsNewestImage(platform::Platform& platform,
                                         absl::Span<const uint8_t> file);

// Every online CPU must report `revision`; the error lists the ones that do not.
absl::Status VerifyHostRevision(platform::Platform& platform, uint32_t revision);

// The host's part of an update report.
struct HostLoadReport {
  LateLoadResult load;
  absl::Status verify;  // VerifyHostRevision after the load
};

}  // namespace ucode::late_load

#endif  // UCODE_HOST_LATE_LOAD_HOST_UPDATE_H_
