// Builds valid synthetic microcode images: the demo's image, test inputs, fuzz seeds.
// Every image it makes passes ParseImage; tests corrupt them on purpose.
#ifndef UCODE_HOST_MICROCODE_IMAGE_GENERATOR_H_
#define UCODE_HOST_MICROCODE_IMAGE_GENERATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "host/microcode/microcode_image.h"

namespace ucode::microcode {

struct GeneratorOptions {
  uint32_t signature = 0x000806f8;   // Sapphire Rapids E5
  uint32_t platform_flags = 0x87;
  uint32_t revision = 0x2b000001;
  uint32_t date = 0x11112025;        // BCD mmddyyyy
  uint32_t min_req_revision = 0x2b000000;
  size_t data_size = 16 * 1024 - kHeaderSize;  // must be a multiple of 4
  std::vector<ExtendedSignature> extended_signatures;  // checksums are filled in
  uint32_t fill_seed = 1;            // deterministic pseudo-random data contents
  // The pre-Pentium 4 layout: datasize and totalsize fields 0, meaning 2000 data bytes
  // and 2048 in all; data_size and extended_signatures are then ignored.
  bool legacy_layout = false;
};

// A single valid image; total size rounded up to a multiple of 1 KiB by growing the data
// (the loader requires header + data + extended table to fill totalsize exactly). Fails only on
// impossible options (data_size not a multiple of 4, sizes overflowing 32 bits).
absl::StatusOr<std::vector<uint8_t>> GenerateImage(const GeneratorOptions& options);

}  // namespace ucode::microcode

#endif  // UCODE_HOST_MICROCODE_IMAGE_GENERATOR_H_
