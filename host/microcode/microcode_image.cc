#include "host/microcode/microcode_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "host/base/pinned_file.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"
#include "host/microcode/checksum.h"

namespace ucode::microcode {
namespace {

// The header's fields in SDM Vol. 3A Table 10-7 ("Microcode Update Field Definitions")
// order: field i is the little-endian dword at offset 4 * i.
using H = MicrocodeHeader;
constexpr uint32_t H::*kHeaderFields[] = {
    &H::header_version,   &H::revision,       &H::date,      &H::signature,  &H::checksum,
    &H::loader_version,   &H::platform_flags, &H::data_size, &H::total_size, &H::metadata_size,
    &H::min_req_revision, &H::reserved};
static_assert(std::size(kHeaderFields) * sizeof(uint32_t) == kHeaderSize);

// Extended signature table header: count, checksum, 12 reserved bytes (SDM Table 10-8).
constexpr size_t kExtCountOffset = 0;

constexpr uint32_t kSupportedHeaderVersion = 1;
constexpr uint32_t kSupportedLoaderVersion = 1;
constexpr size_t kTotalSizeGranule = 1024;  // SDM: total size is a multiple of 1 KiB

absl::Status Invalid(absl::string_view check, absl::string_view detail) {
  return absl::InvalidArgumentError(absl::StrCat(check, ": ", detail));
}

absl::Status DoesNotFit(absl::string_view check, absl::string_view detail) {
  return absl::OutOfRangeError(absl::StrCat(check, ": ", detail));
}

MicrocodeHeader DecodeHeader(absl::Span<const uint8_t> b) {
  MicrocodeHeader h;
  for (size_t i = 0; i < std::size(kHeaderFields); ++i) {
    h.*kHeaderFields[i] = LoadLe32(b, 4 * i);
  }
  return h;
}

// The kernel's get_totalsize()/intel_microcode_get_datasize(): a zero datasize means the
// pre-Pentium-4 fixed layout, and then the totalsize field is ignored, not trusted.
size_t EffectiveDataSize(const MicrocodeHeader& h) {
  return h.data_size != 0 ? h.data_size : kDefaultDataSize;
}
size_t EffectiveTotalSize(const MicrocodeHeader& h) {
  return h.data_size != 0 ? h.total_size : kDefaultTotalSize;
}

// The extended signature table checks of intel_microcode_sanity_check(), in its order.
// `table` is exactly the ext_table_size bytes after header+data.
absl::Status CheckExtendedTable(absl::Span<const uint8_t> table, uint32_t* count_out) {
  const size_t size = table.size();
  if (size < kExtTableHeaderSize || (size - kExtTableHeaderSize) % kExtSignatureSize != 0) {
    return Invalid("extended table size",
                   absl::StrFormat("0x%x bytes after data is not 20 + n*12 (truncated table)",
                                   size));
  }
  const uint32_t count = LoadLe32(table, kExtCountOffset);
  // 64-bit arithmetic: the kernel's exttable_size() is 32-bit and a count of n + 2^30
  // wraps to the same size as n, which would then drive its per-entry loop out of bounds.
  const uint64_t expected = uint64_t{count} * kExtSignatureSize + kExtTableHeaderSize;
  if (expected != size) {
    return Invalid("extended table count",
                   absl::StrFormat("%u entries need 0x%x bytes, table has 0x%x", count,
                                   expected, size));
  }
  if (uint32_t sum = SumDwords(table); sum != 0) {
    return Invalid("extended table checksum", absl::StrFormat("sum 0x%x != 0", sum));
  }
  *count_out = count;
  return absl::OkStatus();
}

}  // namespace

size_t MicrocodeImage::data_size() const { return EffectiveDataSize(header); }
size_t MicrocodeImage::total_size() const { return EffectiveTotalSize(header); }

std::string MicrocodeImage::DateString() const {
  // BCD mmddyyyy: month in bits 31:24, day in 23:16, year in 15:0 (SDM Table 10-7).
  return absl::StrFormat("%04x-%02x-%02x", header.date & 0xffff, header.date >> 24,
                         (header.date >> 16) & 0xff);
}

std::optional<MicrocodeHeader> PeekHeader(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) return std::nullopt;
  return DecodeHeader(bytes);
}

void EncodeHeader(const MicrocodeHeader& header, absl::Span<uint8_t> bytes) {
  for (size_t i = 0; i < std::size(kHeaderFields); ++i) {
    StoreLe32(bytes, 4 * i, header.*kHeaderFields[i]);
  }
}

absl::StatusOr<MicrocodeImage> ParseImage(absl::Span<const uint8_t> bytes) {
  if (bytes.size() < kHeaderSize) {
    return DoesNotFit("header", absl::StrFormat("0x%x bytes available, need 0x%x",
                                                bytes.size(), kHeaderSize));
  }
  MicrocodeImage image;
  image.header = DecodeHeader(bytes);
  const MicrocodeHeader& h = image.header;
  const size_t data_size = EffectiveDataSize(h);
  const size_t total_size = EffectiveTotalSize(h);

  // The loader's framing checks (parse_microcode_blobs): the size must cover the header
  // and fit in what we were given.
  if (total_size < kHeaderSize) {
    return Invalid("totalsize", absl::StrFormat("0x%x smaller than the 0x%x-byte header",
                                                total_size, kHeaderSize));
  }
  if (total_size > bytes.size()) {
    return DoesNotFit("totalsize", absl::StrFormat("0x%x exceeds the 0x%x bytes available",
                                                   total_size, bytes.size()));
  }
  const absl::Span<const uint8_t> mc = bytes.first(total_size);

  // intel_microcode_sanity_check(), in order. Sizes are size_t (64-bit): no overflow.
  if (data_size + kHeaderSize > total_size) {
    return Invalid("datasize", absl::StrFormat("0x%x + 0x%x-byte header exceeds totalsize 0x%x",
                                               data_size, kHeaderSize, total_size));
  }
  if (h.loader_version != kSupportedLoaderVersion) {
    return Invalid("loader version", absl::StrFormat("%u != 1", h.loader_version));
  }
  if (h.header_version != kSupportedHeaderVersion) {
    return Invalid("header version", absl::StrFormat("%u != 1", h.header_version));
  }
  const absl::Span<const uint8_t> ext_table = mc.subspan(kHeaderSize + data_size);
  uint32_t ext_count = 0;
  if (!ext_table.empty()) RETURN_IF_ERROR(CheckExtendedTable(ext_table, &ext_count));
  if (uint32_t sum = SumDwords(mc.first(kHeaderSize + data_size)); sum != 0) {
    return Invalid("data checksum", absl::StrFormat("sum 0x%x != 0", sum));
  }
  // Each extended entry restates the primary checksum for its own sig/pf pair, so the
  // difference of the two triples must be zero (the kernel's final loop). The count is
  // now bounded by the table size, so this reserve is sized by checked data.
  image.extended_signatures.reserve(ext_count);
  const uint32_t primary = h.signature + h.platform_flags + h.checksum;
  for (uint32_t i = 0; i < ext_count; ++i) {
    const size_t at = kExtTableHeaderSize + size_t{i} * kExtSignatureSize;
    ExtendedSignature e{LoadLe32(ext_table, at), LoadLe32(ext_table, at + 4),
                        LoadLe32(ext_table, at + 8)};
    if (uint32_t sum = primary - (e.signature + e.platform_flags + e.checksum); sum != 0) {
      return Invalid("extended signature checksum",
                     absl::StrFormat("entry %u (sig 0x%x pf 0x%x) sum 0x%x != 0", i,
                                     e.signature, e.platform_flags, sum));
    }
    image.extended_signatures.push_back(e);
  }

  // SDM Vol. 3A §10.11.1 rules the kernel does not check. The data rule goes first: once
  // the kernel's checks pass, header + data + table fill totalsize exactly, so a data
  // size that is not whole dwords always gives a totalsize that is not whole KiB too.
  if (data_size % sizeof(uint32_t) != 0) {
    return Invalid("datasize", absl::StrFormat("0x%x not a multiple of 4", data_size));
  }
  if (total_size % kTotalSizeGranule != 0) {
    return Invalid("totalsize",
                   absl::StrFormat("0x%x not a multiple of %u", total_size, kTotalSizeGranule));
  }
  image.bytes = mc;
  return image;
}

std::vector<BundleEntry> ParseBundle(absl::Span<const uint8_t> bytes) {
  std::vector<BundleEntry> entries;
  size_t offset = 0;
  while (offset < bytes.size()) {
    const absl::Span<const uint8_t> rest = bytes.subspan(offset);
    absl::StatusOr<MicrocodeImage> image = ParseImage(rest);
    // The next member starts total_size bytes on; that is trustworthy only when the
    // header was there and its size covers the header and fits the file.
    size_t advance = 0;
    if (rest.size() >= kHeaderSize) {
      const size_t total = EffectiveTotalSize(DecodeHeader(rest));
      if (total >= kHeaderSize && total <= rest.size()) advance = total;
    }
    if (image.ok()) image->offset = offset;
    entries.push_back(BundleEntry{offset, std::move(image)});
    if (advance == 0) break;
    offset += advance;
  }
  return entries;
}

absl::StatusOr<std::vector<MicrocodeImage>> ParseBundleStrict(absl::Span<const uint8_t> bytes) {
  if (bytes.empty()) return Invalid("bundle", "empty input holds no image");
  std::vector<MicrocodeImage> images;
  for (BundleEntry& entry : ParseBundle(bytes)) {
    if (!entry.image.ok()) {
      const absl::Status& s = entry.image.status();
      return absl::Status(s.code(),
                          absl::StrFormat("image at offset 0x%x: %s", entry.offset, s.message()));
    }
    images.push_back(*std::move(entry.image));
  }
  return images;
}

absl::StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::string& path, size_t max_bytes) {
  // The type is checked before the file is opened for reading (host/base/pinned_file.h).
  UniqueFd handle(::open(path.c_str(), O_PATH | O_CLOEXEC));
  if (!handle) return ErrnoStatus(errno, absl::StrCat("open ", path));
  struct stat st;
  if (::fstat(handle.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("read ", path, ": not a regular file"));
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "read %s: size %d exceeds the limit of %u bytes", path, st.st_size, max_bytes));
  }
  return ReadPinnedFile(handle.get(), path, static_cast<size_t>(st.st_size));
}

}  // namespace ucode::microcode
