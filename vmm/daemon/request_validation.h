// Checks every request before anything happens: a bad request is INVALID_ARGUMENT naming
// the field and the check, and never touches the host. Images are bounded before they are
// read: a host_path is opened and fstat()ed, and refused by size before a byte is read.
#ifndef UCODE_VMM_DAEMON_REQUEST_VALIDATION_H_
#define UCODE_VMM_DAEMON_REQUEST_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/ucode/v1/ucoded.pb.h"
#include "vmm/daemon/update_runner.h"

namespace ucode::daemon {

struct RequestLimits {
  // The largest release file today is ~3.3 MB (Granite Rapids); bundles of several
  // platforms stay well under this.
  size_t max_image_bytes = 16u << 20;
  absl::Duration default_park_deadline = absl::Milliseconds(100);
  absl::Duration max_park_deadline = absl::Seconds(10);
  absl::Duration default_agent_timeout = absl::Seconds(5);
  absl::Duration max_agent_timeout = absl::Minutes(5);
  size_t max_request_id_bytes = 128;
  size_t max_guest_name_bytes = 256;
  size_t max_guests = 4096;
};

// The image bytes of `source` (`field` names it in errors, e.g. "image"), size-checked.
absl::StatusOr<std::vector<uint8_t>> LoadImageSource(const ucode::v1::ImageSource& source,
                                                     const std::string& field,
                                                     const RequestLimits& limits);

// Loads and parses the image (every member must parse: the runner never sees a malformed
// file) and checks every other field. `operation` is filled later by the caller.
absl::StatusOr<ApplyParams> ValidateApply(const ucode::v1::ApplyUpdateRequest& request,
                                          const RequestLimits& limits);
absl::StatusOr<SyncParams> ValidateSync(const ucode::v1::SyncGuestViewsRequest& request,
                                        const RequestLimits& limits);
absl::StatusOr<StageParams> ValidateStage(const ucode::v1::StageImageRequest& request,
                                          const RequestLimits& limits);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_REQUEST_VALIDATION_H_
