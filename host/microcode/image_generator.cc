#include "host/microcode/image_generator.h"

#include <cstdint>

#include "absl/strings/str_format.h"
#include "host/microcode/checksum.h"
#include "host/microcode/microcode_image.h"

namespace ucode::microcode {
namespace {

constexpr size_t kTotalSizeGranule = 1024;
constexpr uint64_t kMaxImageSize = 0xffffffffu;  // header fields are 32-bit

// xorshift32: a cheap deterministic fill so generated data is not all zero (a zero body
// would hide checksum bugs that only show with carries).
uint32_t NextFill(uint32_t& state) {
  state ^= state << 13;
  state ^= state >> 17;
  state ^= state << 5;
  return state;
}

void WriteHeader(absl::Span<uint8_t> out, const GeneratorOptions& o, uint32_t data_field,
                 uint32_t total_field) {
  EncodeHeader({.header_version = 1,
                .revision = o.revision,
                .date = o.date,
                .signature = o.signature,
                .checksum = 0,  // fixed up after the data is in place
                .loader_version = 1,
                .platform_flags = o.platform_flags,
                .data_size = data_field,
                .total_size = total_field,
                .metadata_size = 0,
                .min_req_revision = o.min_req_revision,
                .reserved = 0},
               out);
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> GenerateImage(const GeneratorOptions& options) {
  if (!options.legacy_layout && options.data_size % sizeof(uint32_t) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("generator: data_size 0x%x not a multiple of 4", options.data_size));
  }
  const size_t ext_count = options.legacy_layout ? 0 : options.extended_signatures.size();
  const uint64_t ext_size =
      ext_count == 0 ? 0 : kExtTableHeaderSize + uint64_t{ext_count} * kExtSignatureSize;
  uint64_t total = options.legacy_layout ? kDefaultTotalSize
                                         : uint64_t{kHeaderSize} + options.data_size + ext_size;
  total = (total + kTotalSizeGranule - 1) / kTotalSizeGranule * kTotalSizeGranule;
  // A zero data size would read back as the legacy 2000-byte default: add a granule.
  if (!options.legacy_layout && total == kHeaderSize + ext_size) total += kTotalSizeGranule;
  if (total > kMaxImageSize || options.data_size > kMaxImageSize) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "generator: image of 0x%x bytes does not fit the 32-bit totalsize field", total));
  }
  const size_t data_size =
      options.legacy_layout ? kDefaultDataSize : static_cast<size_t>(total - kHeaderSize - ext_size);

  std::vector<uint8_t> out(static_cast<size_t>(total), 0);
  absl::Span<uint8_t> bytes(out);
  WriteHeader(bytes, options, options.legacy_layout ? 0 : static_cast<uint32_t>(data_size),
              options.legacy_layout ? 0 : static_cast<uint32_t>(total));
  uint32_t state = options.fill_seed != 0 ? options.fill_seed : 1;
  for (size_t at = kHeaderSize; at + 4 <= kHeaderSize + data_size; at += 4) {
    StoreLe32(bytes, at, NextFill(state));
  }
  // Header + data must sum to zero (SDM §10.11.1); make the checksum field the negation.
  const uint32_t checksum = 0u - SumDwords(bytes.first(kHeaderSize + data_size));
  StoreLe32(bytes, 16, checksum);

  if (ext_count != 0) {
    absl::Span<uint8_t> table = bytes.subspan(kHeaderSize + data_size);
    StoreLe32(table, 0, static_cast<uint32_t>(ext_count));
    // Each entry's checksum makes sig + pf + checksum equal the primary triple's sum, the
    // relation the loader checks per entry.
    const uint32_t primary = options.signature + options.platform_flags + checksum;
    for (size_t i = 0; i < ext_count; ++i) {
      const ExtendedSignature& e = options.extended_signatures[i];
      const size_t at = kExtTableHeaderSize + i * kExtSignatureSize;
      StoreLe32(table, at, e.signature);
      StoreLe32(table, at + 4, e.platform_flags);
      StoreLe32(table, at + 8, primary - e.signature - e.platform_flags);
    }
    StoreLe32(table, 4, 0u - SumDwords(table));
  }
  return out;
}

}  // namespace ucode::microcode
