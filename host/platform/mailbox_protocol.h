// The Intel microcode staging mailbox protocol, shared by the driver and the model.
// Facts from the Linux staging series (Chang S. Bae, "x86/microcode/intel: Support
// mailbox transfer", arch/x86/kernel/cpu/microcode/intel.c, Linux 6.19):
//  - four 32-bit registers at the address in MSR 0x7A5 of each package;
//  - narrow data registers: every dword of a request goes to WRDATA, every dword of the
//    response is read from RDDATA and acknowledged by writing 0 to RDDATA;
//  - request = 64-bit mailbox header, 64-bit command (LOAD), then up to one page of image;
//  - response = 64-bit header, next offset, status; 0xFFFFFFFF as next offset ends staging.
#ifndef UCODE_HOST_PLATFORM_MAILBOX_PROTOCOL_H_
#define UCODE_HOST_PLATFORM_MAILBOX_PROTOCOL_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace ucode::platform {

inline constexpr size_t kMboxWindowSize = 16;  // 4 registers x 4 bytes
inline constexpr uint32_t kMboxControlOffset = 0x0;
inline constexpr uint32_t kMboxStatusOffset = 0x4;
inline constexpr uint32_t kMboxWrDataOffset = 0x8;
inline constexpr uint32_t kMboxRdDataOffset = 0xC;

inline constexpr uint32_t kMboxControlAbort = 1u << 0;
inline constexpr uint32_t kMboxControlGo = 1u << 31;
inline constexpr uint32_t kMboxStatusError = 1u << 2;
inline constexpr uint32_t kMboxStatusReady = 1u << 31;

inline constexpr uint32_t kMboxResponseSuccess = 1u << 0;
inline constexpr uint32_t kMboxResponseError = 1u << 2;

inline constexpr uint32_t kMboxVendorIntel = 0x8086;
inline constexpr uint32_t kMboxObjectStaging = 0xB;
inline constexpr uint64_t kMboxCommandLoad = 0x3;

inline constexpr size_t kMboxHeaderBytes = 8;    // the 64-bit mailbox header
inline constexpr size_t kMboxCommandBytes = 8;   // the 64-bit command header
inline constexpr size_t kMboxResponseBytes = 8;  // next offset + status
inline constexpr size_t kMboxChunkBytes = 4096;  // kernel: one PAGE_SIZE per transaction
inline constexpr uint32_t kMboxOffsetEnd = 0xFFFFFFFF;
inline constexpr absl::Duration kMboxTransactionTimeout = absl::Seconds(10);
// The kernel sleeps this long before each STATUS read (wait_for_transaction(): msleep(1)).
inline constexpr absl::Duration kMboxPollInterval = absl::Milliseconds(1);

// Mailbox header for a message of `total_bytes` (header included): vendor in bits 15:0,
// object type in 31:16, size in dwords in 63:32.
constexpr uint64_t MboxHeader(size_t total_bytes) {
  return kMboxVendorIntel | (uint64_t{kMboxObjectStaging} << 16) |
         (uint64_t{total_bytes / 4} << 32);
}

// The only valid response header: a header plus the 8-byte response body.
inline constexpr uint64_t kMboxResponseHeader = MboxHeader(kMboxHeaderBytes + kMboxResponseBytes);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_MAILBOX_PROTOCOL_H_
