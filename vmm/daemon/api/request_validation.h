// Checks every request before anything happens: a bad request is INVALID_ARGUMENT naming
// the field and the check, and never touches the host. Images are bounded before they are
// read, each by size and all together by the ImageBudget. A host_path is read only under
// an image root (RequestLimits::image_roots): resolved beneath it with openat2
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), opened O_PATH and fstat()ed, so that nothing
// but a regular file is ever opened for reading (opening /dev/watchdog arms it); errors
// never quote a file's contents.
#ifndef UCODE_VMM_DAEMON_API_REQUEST_VALIDATION_H_
#define UCODE_VMM_DAEMON_API_REQUEST_VALIDATION_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "proto/ucode/v1/ucoded.pb.h"
#include "vmm/daemon/api/image_budget.h"
#include "vmm/daemon/operations/update_runner.h"

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
  // Image bytes held at once, over all requests and the running operation (ImageBudget).
  size_t max_image_bytes_in_flight = 64u << 20;
  // Directories a host_path may name a file beneath (--image_root).
  std::vector<std::string> image_roots = {"/lib/firmware/intel-ucode", "/var/lib/ucode/images"};
};

// The image bytes of `source` (`field` names it in errors, e.g. "image"), size-checked,
// with `lease` holding their size in `budget` (RESOURCE_EXHAUSTED when it is spent).
absl::StatusOr<std::vector<uint8_t>> LoadImageSource(const ucode::v1::ImageSource& source,
                                                     const std::string& field,
                                                     const RequestLimits& limits,
                                                     ImageBudget& budget,
                                                     ImageBudget::Lease* lease);

// Loads and parses the image (every member must parse: the runner never sees a malformed
// file) and checks every other field. `operation` is filled later by the caller.
absl::StatusOr<ApplyParams> ValidateApply(const ucode::v1::ApplyUpdateRequest& request,
                                          const RequestLimits& limits, ImageBudget& budget,
                                          ImageBudget::Lease* lease);
absl::StatusOr<SyncParams> ValidateSync(const ucode::v1::SyncGuestViewsRequest& request,
                                        const RequestLimits& limits);
absl::StatusOr<StageParams> ValidateStage(const ucode::v1::StageImageRequest& request,
                                          const RequestLimits& limits, ImageBudget& budget,
                                          ImageBudget::Lease* lease);

// A fingerprint of the whole request (64-bit FNV-1a of its deterministic serialization, in
// hex), stored with its request_id so that a retry under the same id can be told from a
// different request.
std::string RequestDigest(const google::protobuf::Message& request);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_REQUEST_VALIDATION_H_
