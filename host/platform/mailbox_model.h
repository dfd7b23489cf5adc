// MailboxModel: the emulated staging mailbox of one package (the hardware side of the
// protocol in mailbox_protocol.h). It checks everything the driver sends — header,
// command, chunk size and order, and the stored image's checksums at the end — and keeps
// the staged image so that activation can tell a staged load from an unstaged one.
// Faults a test or an operator can choose are in MailboxBehavior.
//
// Threads: register accesses (Read32/Write32) come from one thread at a time — the
// MmioWindow contract in host/platform/platform.h — and take no lock, like the device's
// own registers. The staged image, its generation and the last protocol error are shared
// with activation threads under `mu_`, which the register path takes only at ABORT, at the
// end of a transfer and on a refused request. Counters are single-writer atomics, so
// stats() may be read from any thread. set_behavior() must not race a transfer.
//
// Cost model: `access_cost` is charged per register access but paid in one busy-wait at
// each GO, ABORT and at the acknowledgement of a response's last dword, against one clock
// read: the device's own clock reads and bookkeeping do not inflate the charged time, and
// the time between accesses (the driver's work) adds to it, as on real uncached MMIO.
#ifndef UCODE_HOST_PLATFORM_MAILBOX_MODEL_H_
#define UCODE_HOST_PLATFORM_MAILBOX_MODEL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "host/platform/mailbox_protocol.h"

namespace ucode::platform {

enum class MailboxFault {
  kNone,
  kRepeatChunk,        // from transaction `at`, ask for the same chunk again `count` times
  kRestartFromZero,    // after `at` accepted chunks, drop the cache and ask for offset 0;
                       // `count` times
  kStatusError,        // transaction `at` ends with STATUS.ERROR
  kResponseError,      // transaction `at` answers with the response error bit
  kBadResponseHeader,  // transaction `at` answers with a wrong header
  kOffsetPastEnd,      // transaction `at` answers with an offset beyond the image
  kNeverReady,         // transaction `at` never sets READY (driver times out)
};

absl::StatusOr<MailboxFault> ParseMailboxFault(absl::string_view name);

struct MailboxBehavior {
  MailboxFault fault = MailboxFault::kNone;
  int at = 0;     // 0-based transaction (GO) index since the last ABORT
  int count = 1;  // repetitions for kRepeatChunk / kRestartFromZero
  // READY appears this long after GO (a slow device).
  absl::Duration transaction_delay = absl::ZeroDuration();
  // For this long after GO the device has not taken it yet: STATUS still shows the
  // previous transaction's value (READY) and RDDATA holds nothing (reads 0).
  absl::Duration stale_ready = absl::ZeroDuration();
  // Busy time charged on every register access (uncached MMIO is ~100 ns or more).
  absl::Duration access_cost = absl::ZeroDuration();
};

struct MailboxStats {
  uint64_t register_accesses = 0;
  uint64_t protocol_errors = 0;  // requests the model refused
  // Busy time charged for register accesses: register_accesses x access_cost, summed
  // over behaviour changes (deterministic, unlike the wall time it costs).
  absl::Duration charged_access_time;
};

// Cache-line aligned: each package's device is driven by its own thread.
class alignas(64) MailboxModel {
 public:
  explicit MailboxModel(MailboxBehavior behavior = {});
  MailboxModel(const MailboxModel&) = delete;
  MailboxModel& operator=(const MailboxModel&) = delete;

  // Register access at a byte offset within the 16-byte window.
  uint32_t Read32(uint32_t offset);
  void Write32(uint32_t offset, uint32_t value);

  // True if the last completed staging stored exactly `image`.
  [[nodiscard]] bool HoldsStagedImage(absl::Span<const uint8_t> image) const;
  [[nodiscard]] size_t staged_size() const;
  // Incremented whenever the staged image changes (ABORT, completed staging): lets callers
  // cache HoldsStagedImage results.
  [[nodiscard]] uint64_t staged_generation() const;
  [[nodiscard]] MailboxStats stats() const;
  // Why the model refused the last request ("" if it never did).
  [[nodiscard]] std::string last_protocol_error() const;

  void set_behavior(const MailboxBehavior& behavior);

 private:
  // Largest request the model buffers: header, command and one page, plus slack so that
  // an oversized request is reported as such; one more slot marks it oversized.
  static constexpr size_t kMaxRequestDwords =
      (kMboxHeaderBytes + kMboxCommandBytes) / 4 + 2 * kMboxChunkBytes / 4;

  // Counters written only by the register-access thread (load + store, no locked RMW)
  // and read by anyone.
  struct Counter {
    std::atomic<uint64_t> v{0};
    void Add(uint64_t n) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t Get() const { return v.load(std::memory_order_relaxed); }
  };

  void Abort();
  void Go();
  // True while the last GO has not been taken (MailboxBehavior::stale_ready).
  bool GoPending() const;
  // Checks the request and stores its chunk; returns the next offset to ask for, or an
  // error that the device reports through STATUS.ERROR.
  absl::StatusOr<uint32_t> Process();
  void Respond(uint64_t header, uint32_t offset, uint32_t status);
  void RecordProtocolError(std::string message);
  void CompleteStaging();
  // Busy-waits for the access cost charged since the last payment (see the cost model).
  void PayAccessCost();

  // --- Register state: the register-access thread only. ---
  MailboxBehavior behavior_;
  int64_t cost_ns_ = 0;          // behavior_.access_cost in ns
  int64_t cost_owed_ns_ = 0;     // charged, not yet paid
  Counter register_accesses_, protocol_errors_, charged_ns_;
  std::array<uint32_t, kMaxRequestDwords + 1> request_;  // dwords written since last GO
  size_t request_len_ = 0;
  std::array<uint32_t, 4> response_{};
  size_t response_len_ = 0;
  size_t response_index_ = 0;
  uint32_t status_ = 0;
  absl::Time ready_at_ = absl::InfinitePast();  // read only when transaction_delay > 0
  absl::Time taken_at_ = absl::InfinitePast();  // read only when stale_ready > 0
  uint32_t stale_status_ = 0;                    // STATUS before the last GO
  bool never_ready_ = false;

  // The transfer in progress since the last ABORT.
  std::vector<uint8_t> buffer_;
  size_t image_size_ = 0;  // from the image header, once known
  uint32_t expected_offset_ = 0;
  int transaction_ = 0;
  int chunks_since_restart_ = 0;
  int faults_done_ = 0;

  // --- Shared with activation threads. ---
  mutable std::mutex mu_;
  std::vector<uint8_t> staged_;        // guarded by mu_
  uint64_t staged_generation_ = 0;     // guarded by mu_
  std::string last_protocol_error_;    // guarded by mu_
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_MAILBOX_MODEL_H_
