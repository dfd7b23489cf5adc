// MailboxModel: the emulated staging mailbox of one package (the hardware side of the
// protocol in mailbox_protocol.h). It checks everything the driver sends — header,
// command, chunk size and order, and the stored image's checksums at the end — and keeps
// the staged image so that activation can tell a staged load from an unstaged one.
// Faults a test or an operator can choose are in MailboxBehavior.
//
// Thread safety: all methods are safe to call concurrently (one mutex). In practice one
// staging thread drives the registers while activation threads query the staged image.
// The lock is a std::mutex rather than absl::Mutex because it is taken on every register
// access: Debian's Abseil is built with deadlock detection, whose global graph made each
// access cost ~200 ns and serialised packages staged in parallel (bench_staging).
#ifndef UCODE_HOST_STAGING_MAILBOX_MODEL_H_
#define UCODE_HOST_STAGING_MAILBOX_MODEL_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace ucode::staging {

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

absl::string_view MailboxFaultName(MailboxFault fault);
absl::StatusOr<MailboxFault> ParseMailboxFault(absl::string_view name);

struct MailboxBehavior {
  MailboxFault fault = MailboxFault::kNone;
  int at = 0;     // 0-based transaction (GO) index since the last ABORT
  int count = 1;  // repetitions for kRepeatChunk / kRestartFromZero
  // READY appears this long after GO (a slow device).
  absl::Duration transaction_delay = absl::ZeroDuration();
  // Busy time charged on every register access (uncached MMIO is ~100 ns or more).
  absl::Duration access_cost = absl::ZeroDuration();
};

struct MailboxStats {
  uint64_t register_accesses = 0;
  uint64_t transactions = 0;     // GO writes
  uint64_t chunks_accepted = 0;
  uint64_t bytes_received = 0;   // image bytes, retransmits included
  uint64_t stagings_completed = 0;
  uint64_t protocol_errors = 0;  // requests the model refused
};

class MailboxModel {
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
  void Abort();
  void Go();
  // Checks the request and stores its chunk; returns the next offset to ask for, or an
  // error that the device reports through STATUS.ERROR.
  absl::StatusOr<uint32_t> Process();
  uint32_t ApplyResponseFaults(uint32_t next);
  void Respond(uint64_t header, uint32_t offset, uint32_t status)
     ;
  void ChargeAccess() const;

  // Everything below is guarded by mu_; the private helpers run with it held.
  mutable std::mutex mu_;
  MailboxBehavior behavior_;
  MailboxStats stats_;
  std::vector<uint32_t> request_;  // dwords written since last GO
  std::vector<uint32_t> response_;
  size_t response_index_ = 0;
  uint32_t status_ = 0;
  absl::Time ready_at_ = absl::InfinitePast();
  bool never_ready_ = false;

  // The transfer in progress since the last ABORT.
  std::vector<uint8_t> buffer_;
  size_t image_size_ = 0;  // from the image header, once known
  uint32_t expected_offset_ = 0;
  int transaction_ = 0;
  int chunks_since_restart_ = 0;
  int faults_done_ = 0;

  std::vector<uint8_t> staged_;
  uint64_t staged_generation_ = 0;
  std::string last_protocol_error_;
};

}  // namespace ucode::staging

#endif  // UCODE_HOST_STAGING_MAILBOX_MODEL_H_
