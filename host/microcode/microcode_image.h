// The Intel microcode update format (SDM Vol. 3A §10.11 "Microcode Update Facilities"):
// a 48-byte header, the encrypted data, and an optional extended signature table.
// Parsing is a pure function over caller-owned bytes: an image or a precise error out,
// no logging, no globals, never a read outside the span and never an allocation sized by
// an unchecked field.
#ifndef UCODE_HOST_MICROCODE_MICROCODE_IMAGE_H_
#define UCODE_HOST_MICROCODE_MICROCODE_IMAGE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace ucode::microcode {

inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kDefaultDataSize = 2000;   // datasize == 0 means these
inline constexpr size_t kDefaultTotalSize = 2048;
inline constexpr size_t kExtTableHeaderSize = 20;
inline constexpr size_t kExtSignatureSize = 12;

// The 48-byte header, little-endian dwords at offsets 0..44.
struct MicrocodeHeader {
  uint32_t header_version;    // 0: must be 1
  uint32_t revision;          // 4: compared unsigned, as the kernel does (IsNewerRevision)
  uint32_t date;              // 8: BCD mmddyyyy
  uint32_t signature;         // 12: CPUID(1).EAX
  uint32_t checksum;          // 16
  uint32_t loader_version;    // 20: must be 1
  uint32_t platform_flags;    // 24: bit mask over MSR 0x17 platform ids 0..7
  uint32_t data_size;         // 28: 0 means 2000
  uint32_t total_size;        // 32: 0 means 2048
  uint32_t metadata_size;     // 36
  uint32_t min_req_revision;  // 40: minimal current revision for a safe late load
  uint32_t reserved;          // 44
};

struct ExtendedSignature {
  uint32_t signature;
  uint32_t platform_flags;
  uint32_t checksum;
};

// One validated image. `bytes` views the caller's buffer (total_size bytes); it stays
// valid only as long as that buffer.
struct MicrocodeImage {
  MicrocodeHeader header;
  size_t offset = 0;  // offset of this image within the parsed file or bundle
  absl::Span<const uint8_t> bytes;
  std::vector<ExtendedSignature> extended_signatures;

  [[nodiscard]] uint32_t revision() const { return header.revision; }
  [[nodiscard]] size_t data_size() const;   // with the 2000 default applied
  [[nodiscard]] size_t total_size() const;  // with the 2048 default applied
  [[nodiscard]] std::string DateString() const;  // "YYYY-MM-DD"
};

// Parses and validates the image at the start of `bytes` (which may continue with more
// images). Checks, in the Linux loader's order (intel_find_matching_signature /
// intel_microcode_sanity_check), then the SDM rules the kernel skips. A failure is an
// absl::Status whose message starts with the check's stable name and gives the values,
// e.g. "data checksum: sum 0x1c != 0" or "totalsize: 0x9100 not a multiple of 1024";
// the code is INVALID_ARGUMENT for a malformed image and OUT_OF_RANGE for one that does
// not fit in `bytes`.
absl::StatusOr<MicrocodeImage> ParseImage(absl::Span<const uint8_t> bytes);

// The raw header fields at the start of `bytes`, unvalidated (for reporting on an image
// that failed validation); nullopt when fewer than kHeaderSize bytes are there.
std::optional<MicrocodeHeader> PeekHeader(absl::Span<const uint8_t> bytes);

// Writes `header` into the first kHeaderSize bytes of `bytes` (the generator's side of
// PeekHeader); the caller guarantees the room.
void EncodeHeader(const MicrocodeHeader& header, absl::Span<uint8_t> bytes);

// One member of a bundle (several images back to back, as in a microcode file).
struct BundleEntry {
  size_t offset;
  absl::StatusOr<MicrocodeImage> image;
};

// Parses every image in `bytes`. Parsing stops after the first member whose size cannot
// be trusted to find the next one; that member is the last entry, with its error.
std::vector<BundleEntry> ParseBundle(absl::Span<const uint8_t> bytes);

// All images of a bundle, or the first member's error (prefixed with its offset).
absl::StatusOr<std::vector<MicrocodeImage>> ParseBundleStrict(absl::Span<const uint8_t> bytes);

// Reads a whole file (refusing files larger than `max_bytes`).
absl::StatusOr<std::vector<uint8_t>> ReadFileBytes(const std::string& path,
                                                   size_t max_bytes = 64u << 20);

}  // namespace ucode::microcode

#endif  // UCODE_HOST_MICROCODE_MICROCODE_IMAGE_H_
