// The durable journal of operations: one SQLite database (WAL, synchronous=FULL, so every
// commit is on disk before the call returns). The daemon writes an operation's row when it
// is created, a step row BEFORE every step that changes the host or a VM (with, for the
// rendezvous, the libvirt domains it is about to pause: they have no dead-man release of
// their own), and the final state when it ends; on start it reads back what a dead
// process left unfinished.
#ifndef UCODE_VMM_DAEMON_JOURNAL_H_
#define UCODE_VMM_DAEMON_JOURNAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "host/base/unique_fd.h"
#include "proto/ucode/v1/ucoded.pb.h"

struct sqlite3;

namespace ucode::daemon {

struct JournalRecord {
  int64_t id = 0;
  std::string request_id;
  std::string request_digest;      // RequestDigest() of the request that created it
  ucode::v1::Operation operation;  // interrupted_step holds the journal's in-progress step
};

// One step row, as written.
struct JournalStep {
  int64_t operation_id = 0;
  ucode::v1::Step step = ucode::v1::STEP_UNSPECIFIED;
  bool begin = false;  // true: "about to start", false: "finished"
  std::string message;
  int64_t time_unix_us = 0;
};

// Room kept on the journal's filesystem for one operation's rows past its rendezvous
// (step rows, the final state and its report).
inline constexpr int64_t kJournalReserveBytes = 4 << 20;

// Thread-safe (one connection behind a mutex). Non-copyable: owns the connection.
//
// Full disk: `<path>.reserve`, a file of kJournalReserveBytes, holds room for one
// operation. Reserve() re-establishes it before an operation may start; a write that finds
// the disk full releases it and retries, so rows written after the host changed land.
// Text is stored and read back as valid UTF-8 (proto3 strings must be; invalid bytes
// become U+FFFD).
class Journal {
 public:
  // Opens or creates the database at `path` (":memory:" for tests that need no file), in
  // a private directory (private_files.h), mode 0600, never through a symlink.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // RESOURCE_EXHAUSTED when the reserve cannot be (re)allocated: the operation must not
  // start, since rows written after its rendezvous might not fit.
  [[nodiscard]] absl::Status Reserve();

  [[nodiscard]] absl::Status InsertOperation(int64_t id, absl::string_view request_id,
                                             absl::string_view request_digest,
                                             const ucode::v1::Operation& op);
  // Writes the whole operation row (state, steps, error, report, times).
  [[nodiscard]] absl::Status UpdateOperation(int64_t id, const ucode::v1::Operation& op);
  // A step row plus the operation's in-progress step, in one transaction, with the names
  // of the libvirt domains the step is about to pause (StepSink::BeginStep).
  [[nodiscard]] absl::Status BeginStep(int64_t id, ucode::v1::Step step,
                                       absl::string_view what, int64_t time_unix_us,
                                       absl::Span<const std::string> paused_domains = {});
  // Finished-step rows plus the operation's last step (and in-progress step, cleared
  // when `clears_in_progress`), in one transaction.
  [[nodiscard]] absl::Status RecordFinishedSteps(int64_t id,
                                                 const std::vector<JournalStep>& steps,
                                                 bool clears_in_progress);

  [[nodiscard]] absl::StatusOr<std::vector<JournalRecord>> LoadOperations();
  // Every domain name BeginStep journaled for the operation, in order written.
  [[nodiscard]] absl::StatusOr<std::vector<std::string>> LoadPausedDomains(int64_t id);

 private:
  explicit Journal(sqlite3* db) : db_(db) {}
  absl::Status ExecLocked(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `write`; if the disk was full, releases the reserve and runs it once more.
  absl::Status WriteLocked(const std::function<absl::Status()>& write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::string reserve_path_;  // empty for ":memory:"
  UniqueFd reserve_fd_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_JOURNAL_H_
