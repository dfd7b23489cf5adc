// Every operation the daemon knows (this run's and the journal's), the "one update per
// host" slot, and paging over them. Operations are numbered 1, 2, ... across restarts.
#ifndef UCODE_VMM_DAEMON_OPERATION_REGISTRY_H_
#define UCODE_VMM_DAEMON_OPERATION_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "proto/ucode/v1/ucoded.pb.h"
#include "vmm/daemon/operations/journal.h"
#include "vmm/daemon/operations/operation_record.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

// Finished operations beyond this many keep only their final event in memory.
inline constexpr size_t kOperationsWithHistory = 64;
inline constexpr int32_t kDefaultPageSize = 50;
inline constexpr int32_t kMaxPageSize = 1000;

class OperationRegistry {
 public:
  explicit OperationRegistry(Journal* journal) : journal_(journal) {}
  OperationRegistry(const OperationRegistry&) = delete;
  OperationRegistry& operator=(const OperationRegistry&) = delete;

  // Loads the journal. Every operation not done is marked INTERRUPTED (with the step it
  // had begun); `confirm` is called for each (the runner's "every parked VM runs" check)
  // and its account goes into the operation's report. Call once, before serving.
  absl::Status Recover(
      const std::function<absl::StatusOr<std::string>(const InterruptedOperation&)>& confirm);

  struct Created {
    std::shared_ptr<OperationRecord> record;
    bool existing = false;  // the request_id named an operation that already exists
  };
  // Takes the host slot and journals a new RUNNING operation of `kind` ("apply"/"stage").
  // ABORTED naming the running operation when the slot is taken; RESOURCE_EXHAUSTED when
  // the journal cannot reserve room for the operation's rows (Journal::Reserve). A
  // non-empty `request_id` seen before returns that operation instead (idempotent
  // retries) if `request_digest` (RequestDigest of the request) matches the original's,
  // and is INVALID_ARGUMENT otherwise: one id, one request.
  absl::StatusOr<Created> Create(absl::string_view kind, absl::string_view request_id,
                                 absl::string_view request_digest = "");

  // Ends `record` with the runner's result and frees the host slot.
  void Finish(OperationRecord& record, const absl::StatusOr<ucode::v1::UpdateReport>& result);

  // Retries the journal writes that failed for finished operations (a disk that was full
  // may have room again). Called before each new operation and at shutdown.
  void CatchUpJournal();

  absl::StatusOr<std::shared_ptr<OperationRecord>> Find(absl::string_view name) const;
  // The running operation, if any.
  std::shared_ptr<OperationRecord> Running() const;
  // Newest first. page_token is the opaque next_page_token of the previous page.
  absl::StatusOr<ucode::v1::ListOperationsResponse> List(int32_t page_size,
                                                         absl::string_view page_token) const;

 private:
  void TrimHistoriesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Journal* const journal_;
  mutable absl::Mutex mu_;
  std::map<int64_t, std::shared_ptr<OperationRecord>> records_ ABSL_GUARDED_BY(mu_);
  struct RequestIdUse {
    int64_t id = 0;
    std::string digest;
  };
  absl::flat_hash_map<std::string, RequestIdUse> by_request_id_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<OperationRecord> running_ ABSL_GUARDED_BY(mu_);
  // Finished operations whose journal rows are incomplete (OperationRecord::JournalBehind).
  std::vector<std::shared_ptr<OperationRecord>> journal_behind_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_OPERATION_REGISTRY_H_
