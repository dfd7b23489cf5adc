#include "host/microcode/checksum.h"

#include <cstring>

namespace ucode::microcode {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the loads below assume a little-endian host (x86-64)");

uint32_t LoadLe32(absl::Span<const uint8_t> bytes, size_t offset) {
  uint32_t v;
  std::memcpy(&v, bytes.data() + offset, sizeof(v));
  return v;
}

void StoreLe32(absl::Span<uint8_t> bytes, size_t offset, uint32_t value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(value));
}

uint32_t SumDwords(absl::Span<const uint8_t> bytes) {
  const uint8_t* p = bytes.data();
  const size_t n = bytes.size() / sizeof(uint32_t);
  // Independent lanes so the compiler emits packed adds (built with -O3, see BUILD); a
  // memcpy load is a plain unaligned mov, so any buffer alignment is fine.
  uint32_t lane[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint32_t v[8];
    std::memcpy(v, p + i * sizeof(uint32_t), sizeof(v));
    for (int k = 0; k < 8; ++k) lane[k] += v[k];
  }
  uint32_t sum = 0;
  for (int k = 0; k < 8; ++k) sum += lane[k];
  for (; i < n; ++i) {
    uint32_t v;
    std::memcpy(&v, p + i * sizeof(uint32_t), sizeof(v));
    sum += v;
  }
  return sum;
}

}  // namespace ucode::microcode
