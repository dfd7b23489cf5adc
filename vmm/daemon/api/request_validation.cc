#include "vmm/daemon/api/request_validation.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "host/base/pinned_file.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "host/microcode/microcode_image.h"

namespace ucode::daemon {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view check) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", check));
}

// A proto enum field: UNSPECIFIED (0) is `fallback`; a number the enum does not name is
// refused (`type`: "an UpdateMode").
template <typename E>
absl::StatusOr<E> KnownEnum(E value, bool (*valid)(int), E fallback, absl::string_view field,
                            absl::string_view type) {
  if (value == 0) return fallback;
  if (!valid(value)) return Invalid(field, absl::StrCat(static_cast<int>(value), " is not ", type));
  return value;
}

// `path` relative to the image root it lies beneath, or INVALID_ARGUMENT naming the roots.
absl::StatusOr<std::pair<std::string, std::string>> UnderImageRoot(const std::string& path,
                                                                   const std::string& field,
                                                                   const RequestLimits& limits) {
  if (path.empty() || path[0] != '/') {
    return Invalid(field, absl::StrCat("'", path.substr(0, 200), "' is not an absolute path"));
  }
  for (const std::string& root : limits.image_roots) {
    std::string prefix = root;
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    prefix.push_back('/');
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0) {
      return std::make_pair(root, path.substr(prefix.size()));
    }
  }
  // Nothing outside the roots is looked at, so the answer is the same whether the path
  // exists or not.
  return Invalid(field, absl::StrCat("'", path.substr(0, 200), "' is not beneath an image root (",
                                     absl::StrJoin(limits.image_roots, ", "),
                                     "; --image_root); send the image's bytes instead"));
}

absl::StatusOr<std::vector<uint8_t>> ReadHostPath(const std::string& path, const std::string& field,
                                                  const RequestLimits& limits, ImageBudget& budget,
                                                  ImageBudget::Lease* lease) {
  ASSIGN_OR_RETURN(auto root_and_rel, UnderImageRoot(path, field, limits));
  const auto& [root, rel] = root_and_rel;
  UniqueFd root_fd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) {
    return absl::FailedPreconditionError(
        ErrnoStatus(errno, absl::StrCat(field, ": image root ", root)).message());
  }
  // O_PATH: resolves and pins the file without opening it for I/O, so a device node is
  // never opened. Symlinks (anywhere in `rel`) and ".." out of the root fail.
  struct open_how how = {};
  how.flags = O_PATH | O_CLOEXEC;  // a symlink, even the last component, is ELOOP
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  UniqueFd pinned(
      static_cast<int>(syscall(SYS_openat2, root_fd.get(), rel.c_str(), &how, sizeof(how))));
  if (!pinned) {
    int err = errno;
    if (err == ELOOP || err == EXDEV) {
      return Invalid(field, absl::StrCat(path, " leaves its image root (a symlink or '..')"));
    }
    return Invalid(field, ErrnoStatus(err, absl::StrCat("open ", path)).message());
  }
  struct stat st;
  if (fstat(pinned.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) return Invalid(field, absl::StrCat(path, " is not a regular file"));
  if (static_cast<uint64_t>(st.st_size) > limits.max_image_bytes) {
    return Invalid(field, absl::StrCat("image size: ", path, " is ", st.st_size,
                                       " bytes, over the limit of ", limits.max_image_bytes));
  }
  ASSIGN_OR_RETURN(*lease, budget.Acquire(static_cast<size_t>(st.st_size), field));
  // Read at most one byte past the size: a file that grew after fstat is still bounded.
  ASSIGN_OR_RETURN(std::vector<uint8_t> bytes,
                   ReadPinnedFile(pinned.get(), path, static_cast<size_t>(st.st_size) + 1));
  const size_t max_bytes = limits.max_image_bytes;
  const size_t got = bytes.size();
  if (got > max_bytes || got > static_cast<size_t>(st.st_size)) {
    return Invalid(field, absl::StrCat("image size: ", path, " grew while being read"));
  }
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
                                                     const RequestLimits& limits,
                                                     ImageBudget& budget,
                                                     ImageBudget::Lease* lease) {
  switch (source.source_case()) {
    case ucode::v1::ImageSource::kImageBytes: {
      const std::string& b = source.image_bytes();
      if (b.size() > limits.max_image_bytes) {
        return Invalid(field + ".image_bytes",
                       absl::StrCat("image size: ", b.size(), " bytes, over the limit of ",
                                    limits.max_image_bytes));
      }
      ASSIGN_OR_RETURN(*lease, budget.Acquire(b.size(), field + ".image_bytes"));
      return std::vector<uint8_t>(b.begin(), b.end());
    }
    case ucode::v1::ImageSource::kHostPath:
      return ReadHostPath(source.host_path(), field + ".host_path", limits, budget, lease);
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
                                          const RequestLimits& limits, ImageBudget& budget,
                                          ImageBudget::Lease* lease) {
  ApplyParams p;
  // Cheap field checks first: a bad flag never costs an image read.
  ASSIGN_OR_RETURN(p.mode, KnownEnum(request.mode(), ucode::v1::UpdateMode_IsValid,
                                     ucode::v1::UPDATE_MODE_STRICT, "mode", "an UpdateMode"));
  ASSIGN_OR_RETURN(
      p.min_rev_policy,
      KnownEnum(request.min_rev_policy(), ucode::v1::MinRevPolicy_IsValid,
                ucode::v1::MIN_REV_POLICY_ENFORCE, "min_rev_policy", "a MinRevPolicy"));
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
  ASSIGN_OR_RETURN(p.image, LoadImageSource(request.image(), "image", limits, budget, lease));
  RETURN_IF_ERROR(ParseWhole(p.image, "image"));
  return p;
}

std::string RequestDigest(const google::protobuf::Message& request) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    request.SerializeToCodedStream(&out);
  }
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis and prime
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return absl::StrCat(absl::Hex(h, absl::kZeroPad16));
}

absl::StatusOr<StageParams> ValidateStage(const ucode::v1::StageImageRequest& request,
                                          const RequestLimits& limits, ImageBudget& budget,
                                          ImageBudget::Lease* lease) {
  StageParams p;
  ASSIGN_OR_RETURN(p.image, LoadImageSource(request.image(), "image", limits, budget, lease));
  RETURN_IF_ERROR(ParseWhole(p.image, "image"));
  return p;
}

}  // namespace ucode::daemon
