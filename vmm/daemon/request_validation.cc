#include "vmm/daemon/request_validation.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "host/microcode/microcode_image.h"

namespace ucode::daemon {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view check) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", check));
}

absl::StatusOr<std::vector<uint8_t>> ReadHostPath(const std::string& path, const std::string& field,
                                                  size_t max_bytes) {
  if (path.empty() || path[0] != '/') {
    return Invalid(field, absl::StrCat("'", path.substr(0, 200), "' is not an absolute path"));
  }
  // O_NONBLOCK: a FIFO must not hang the handler; it is refused below as not regular.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    absl::Status s = ErrnoStatus(err, absl::StrCat(field, ": open ", path));
    // The caller named a file that is not there or not readable: their mistake, not ours.
    return absl::InvalidArgumentError(s.message());
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) return Invalid(field, absl::StrCat(path, " is not a regular file"));
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Invalid(field, absl::StrCat("image size: ", path, " is ", st.st_size,
                                       " bytes, over the limit of ", max_bytes));
  }
  // Read at most one byte past the limit: a file that grew after fstat is still bounded.
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size) + 1);
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = read(fd.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > max_bytes) {
    return Invalid(field, absl::StrCat("image size: ", path, " grew past the limit of ", max_bytes,
                                       " bytes while being read"));
  }
  bytes.resize(got);
  return bytes;
}

absl::Status ParseWhole(const std::vector<uint8_t>& image, const std::string& field) {
  if (image.empty()) return Invalid(field, "image is empty");
  absl::StatusOr<std::vector<microcode::MicrocodeImage>> parsed =
      microcode::ParseBundleStrict(image);
  if (!parsed.ok()) return Invalid(field, parsed.status().message());
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> Bounded(uint64_t value, absl::Duration unit,
                                       absl::Duration default_value, absl::Duration max,
                                       absl::string_view field) {
  if (value == 0) return default_value;
  absl::Duration d = unit * static_cast<int64_t>(std::min<uint64_t>(value, INT64_MAX / 2));
  if (d > max) {
    return Invalid(field, absl::StrCat(value, " is over the limit of ", max / unit, " (",
                                       absl::FormatDuration(max), ")"));
  }
  return d;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> LoadImageSource(const ucode::v1::ImageSource& source,
                                                     const std::string& field,
                                                     const RequestLimits& limits) {
  switch (source.source_case()) {
    case ucode::v1::ImageSource::kImageBytes: {
      const std::string& b = source.image_bytes();
      if (b.size() > limits.max_image_bytes) {
        return Invalid(field + ".image_bytes",
                       absl::StrCat("image size: ", b.size(), " bytes, over the limit of ",
                                    limits.max_image_bytes));
      }
      return std::vector<uint8_t>(b.begin(), b.end());
    }
    case ucode::v1::ImageSource::kHostPath:
      return ReadHostPath(source.host_path(), field + ".host_path", limits.max_image_bytes);
    case ucode::v1::ImageSource::SOURCE_NOT_SET:
      break;
  }
  return Invalid(field, "neither image_bytes nor host_path is set");
}

namespace {

absl::StatusOr<std::vector<std::string>> ValidateGuests(
    const google::protobuf::RepeatedPtrField<std::string>& guests, const RequestLimits& limits) {
  if (guests.size() > static_cast<int>(limits.max_guests)) {
    return Invalid("guests", absl::StrCat(guests.size(), " names, over the limit of ",
                                          limits.max_guests));
  }
  std::vector<std::string> out;
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < guests.size(); ++i) {
    const std::string& g = guests[i];
    std::string field = absl::StrCat("guests[", i, "]");
    if (g.empty()) return Invalid(field, "empty name");
    if (g.size() > limits.max_guest_name_bytes) {
      return Invalid(field, absl::StrCat("name of ", g.size(), " bytes, over the limit of ",
                                         limits.max_guest_name_bytes));
    }
    if (!seen.insert(g).second) return Invalid(field, absl::StrCat("'", g, "' named twice"));
    out.push_back(g);
  }
  return out;
}

}  // namespace

absl::StatusOr<SyncParams> ValidateSync(const ucode::v1::SyncGuestViewsRequest& request,
                                        const RequestLimits& limits) {
  SyncParams p;
  ASSIGN_OR_RETURN(p.guests, ValidateGuests(request.guests(), limits));
  ASSIGN_OR_RETURN(p.park_deadline, Bounded(request.park_deadline_us(), absl::Microseconds(1),
                                            limits.default_park_deadline, limits.max_park_deadline,
                                            "park_deadline_us"));
  return p;
}

absl::StatusOr<ApplyParams> ValidateApply(const ucode::v1::ApplyUpdateRequest& request,
                                          const RequestLimits& limits) {
  ApplyParams p;
  // Cheap field checks first: a bad flag never costs an image read.
  switch (request.mode()) {
    case ucode::v1::UPDATE_MODE_UNSPECIFIED:
    case ucode::v1::UPDATE_MODE_STRICT:
      p.mode = ucode::v1::UPDATE_MODE_STRICT;
      break;
    case ucode::v1::UPDATE_MODE_FAST:
      p.mode = ucode::v1::UPDATE_MODE_FAST;
      break;
    default:
      return Invalid("mode",
                     absl::StrCat(static_cast<int>(request.mode()), " is not an UpdateMode"));
  }
  switch (request.min_rev_policy()) {
    case ucode::v1::MIN_REV_POLICY_UNSPECIFIED:
    case ucode::v1::MIN_REV_POLICY_ENFORCE:
      p.min_rev_policy = ucode::v1::MIN_REV_POLICY_ENFORCE;
      break;
    case ucode::v1::MIN_REV_POLICY_IGNORE:
      p.min_rev_policy = ucode::v1::MIN_REV_POLICY_IGNORE;
      break;
    default:
      return Invalid("min_rev_policy", absl::StrCat(static_cast<int>(request.min_rev_policy()),
                                                    " is not a MinRevPolicy"));
  }
  ASSIGN_OR_RETURN(p.guests, ValidateGuests(request.guests(), limits));
  ASSIGN_OR_RETURN(p.park_deadline, Bounded(request.park_deadline_us(), absl::Microseconds(1),
                                            limits.default_park_deadline, limits.max_park_deadline,
                                            "park_deadline_us"));
  ASSIGN_OR_RETURN(p.agent_timeout, Bounded(request.agent_timeout_ms(), absl::Milliseconds(1),
                                            limits.default_agent_timeout, limits.max_agent_timeout,
                                            "agent_timeout_ms"));
  if (request.request_id().size() > limits.max_request_id_bytes) {
    return Invalid("request_id",
                   absl::StrCat(request.request_id().size(), " bytes, over the limit of ",
                                limits.max_request_id_bytes));
  }
  ASSIGN_OR_RETURN(p.image, LoadImageSource(request.image(), "image", limits));
  RETURN_IF_ERROR(ParseWhole(p.image, "image"));
  return p;
}

absl::StatusOr<StageParams> ValidateStage(const ucode::v1::StageImageRequest& request,
                                          const RequestLimits& limits) {
  StageParams p;
  ASSIGN_OR_RETURN(p.image, LoadImageSource(request.image(), "image", limits));
  RETURN_IF_ERROR(ParseWhole(p.image, "image"));
  return p;
}

}  // namespace ucode::daemon
