// A release rehearsal: for every SKU of a fleet, which image the SKU would take, whether
// that is newer, whether the minimal-revision rule allows it from the revision the SKU runs,
// how long activation would hold the vCPUs (the emulated host's activation model, staged
// and unstaged), and whether the SKU loses an update it had in the release it runs now.
// Each answer comes from the product's own code: ParseImage, SelectImage and the
// emulated host running the update with no VMs (orchestrator::RunUpdate).
#ifndef UCODE_HOST_REHEARSAL_REHEARSAL_H_
#define UCODE_HOST_REHEARSAL_REHEARSAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/rehearsal/fleet.h"
#include "host/rehearsal/image_set.h"

namespace ucode::rehearsal {

struct SkuResult {
  FleetSku sku;
  // The image the SKU would take (the newest matching image newer than its revision,
  // min-rev rule aside); empty when none.
  std::string image;          // "06-8f-08@0x98c00"
  std::string image_path;
  uint32_t new_revision = 0;  // the image's, or the running revision when none
  std::string match;          // "primary" or "extended" signature; empty when none
  std::string min_rev;        // "ok (min_rev 0x… <= 0x…)", "refused", or "-"
  std::optional<absl::Duration> window_staged;    // modelled activation window
  std::optional<absl::Duration> window_unstaged;
  std::string note;                    // why there is no update, or staging's outcome
  std::vector<std::string> failures;  // each starts with its check: "min-rev: …"

  [[nodiscard]] bool ok() const { return failures.empty(); }
  [[nodiscard]] bool has_update() const { return !image.empty(); }
};

struct RehearsalReport {
  std::vector<SkuResult> skus;
  std::vector<InvalidImage> invalid;  // every invalid member of the release
  std::string model;                  // the activation model's parameters

  // OK only when every SKU passes and every image of the release is valid.
  [[nodiscard]] bool ok() const;
  // "<sku>: <failure>" for each SKU failure, then "release: <image>: <error>" for invalid
  // images no SKU takes.
  [[nodiscard]] std::vector<std::string> Failures() const;
};

// `baseline` (may be null) is the release the fleet runs today.
RehearsalReport Rehearse(const ImageSet& release, const ImageSet* baseline,
                         const std::vector<FleetSku>& fleet);

// For a rehearsal expected to fail: the failure line that contains `text`, or
// FAILED_PRECONDITION saying that the rehearsal passed or that no failure contains it.
absl::StatusOr<std::string> FindExpectedFailure(const RehearsalReport& report,
                                                absl::string_view text);

}  // namespace ucode::rehearsal

#endif  // UCODE_HOST_REHEARSAL_REHEARSAL_H_
