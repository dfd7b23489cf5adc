// The one hot loop of validation: the 32-bit wrapping sum of little-endian dwords that
// the Intel format uses for its header+data and extended-table checksums (SDM Vol. 3A
// §10.11.1: "the checksum is correct if the summation of all the DWORDs ... results in
// 00000000H"). Kept in its own library so it can be built at -O3 and vectorised even in
// fastbuild, since it is most of the cost of validating a 17 MB release.
#ifndef UCODE_HOST_MICROCODE_CHECKSUM_H_
#define UCODE_HOST_MICROCODE_CHECKSUM_H_

#include <cstddef>
#include <cstdint>

#include "absl/types/span.h"

namespace ucode::microcode {

// Wrapping sum of the first size/4 little-endian dwords of `bytes` (a trailing partial
// dword is ignored, as the kernel's `i = size / sizeof(u32)` loop does). Any alignment.
uint32_t SumDwords(absl::Span<const uint8_t> bytes);

// Little-endian dword at `offset`; the caller guarantees offset + 4 <= bytes.size().
uint32_t LoadLe32(absl::Span<const uint8_t> bytes, size_t offset);

// Stores `value` little-endian at `offset`; the caller guarantees the room.
void StoreLe32(absl::Span<uint8_t> bytes, size_t offset, uint32_t value);

}  // namespace ucode::microcode

#endif  // UCODE_HOST_MICROCODE_CHECKSUM_H_
