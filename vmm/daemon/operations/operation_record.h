// One operation in memory: its state, its event history (for watchers to replay) and its
// cancel token. It is the StepSink the runner reports to; it journals steps as the
// journal's contract asks (before host/VM changes, and never an fsync while vCPUs are
// parked).
#ifndef UCODE_VMM_DAEMON_OPERATION_RECORD_H_
#define UCODE_VMM_DAEMON_OPERATION_RECORD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/ucode/v1/ucoded.pb.h"
#include "vmm/daemon/operations/journal.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

// History bound per operation: staging progress events past it are dropped (step events
// are always kept), so a runner that reports every chunk cannot grow memory without bound.
inline constexpr size_t kMaxEventsPerOperation = 4096;

class OperationRecord final : public StepSink {
 public:
  // A new operation (state RUNNING), or one loaded from the journal (`op` as stored).
  OperationRecord(int64_t id, ucode::v1::Operation op, Journal* journal);
  OperationRecord(const OperationRecord&) = delete;
  OperationRecord& operator=(const OperationRecord&) = delete;

  [[nodiscard]] int64_t id() const { return id_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const CancelToken& cancel_token() const { return cancel_; }
  [[nodiscard]] ucode::v1::Operation Snapshot() const;

  // StepSink, called by the runner's threads.
  using StepSink::BeginStep;
  absl::Status BeginStep(ucode::v1::Step step, absl::string_view what,
                         absl::Span<const std::string> paused_domains) override;
  void Emit(ucode::v1::Step step, absl::string_view message,
            const ucode::v1::StagingProgress* staging) override;

  // Cancel as a caller asked: FAILED_PRECONDITION once done or past the rendezvous start.
  [[nodiscard]] absl::Status RequestCancel();
  // Waits up to `timeout` for the operation to be done.
  bool WaitDone(absl::Duration timeout) const;

  // The runner's result: sets the final state, journals it, then publishes the STEP_DONE
  // event. `before_publish` runs between the two (the registry frees the host slot there,
  // so a client that sees DONE can start the next update at once).
  void Finish(const absl::StatusOr<ucode::v1::UpdateReport>& result,
              const std::function<void()>& before_publish);

  // Streams the history from the first event, then live events, until the DONE event was
  // written, `write` returns false (client gone) or `stopped` returns true. Memory per
  // watcher is the batch it is writing: events live once, in the record.
  absl::Status Watch(const std::function<bool(const ucode::v1::OperationEvent&)>& write,
                     const std::function<bool()>& stopped) const;

  // Drops the event history of an old, finished operation (Watch then replays only the
  // final state).
  void DropHistory();

  // True when a journal write of this operation failed and has not been made good since.
  [[nodiscard]] bool JournalBehind() const;
  // Writes what the journal lacks (step rows kept in memory, the final state), so that a
  // later restart finds what really happened. OK when nothing is missing any more.
  absl::Status CatchUpJournal();

 private:
  ucode::v1::OperationEvent& AppendLocked(ucode::v1::Step step, absl::string_view message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FlushPending();
  // Logs a failed journal write; once the rendezvous was journaled it is also shown in the
  // operation's journal_error.
  void RecordJournalErrorLocked(const absl::Status& s, absl::string_view step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int64_t id_;
  const std::string name_;
  Journal* const journal_;
  CancelToken cancel_;

  mutable absl::Mutex mu_;
  ucode::v1::Operation op_ ABSL_GUARDED_BY(mu_);
  std::vector<ucode::v1::OperationEvent> events_ ABSL_GUARDED_BY(mu_);
  bool history_dropped_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_progress_events_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool rendezvous_begun_ ABSL_GUARDED_BY(mu_) = false;
  // BeginStep(STEP_PARKED) is on disk: from here the host may change, and journal errors
  // no longer stop the operation (they are reported in journal_error).
  bool rendezvous_journaled_ ABSL_GUARDED_BY(mu_) = false;
  // Between BeginStep(STEP_PARKED) and the STEP_RELEASED event finished-step rows wait
  // here: guests are held, so no fsync may sit on the runner's path.
  bool in_rendezvous_ ABSL_GUARDED_BY(mu_) = false;
  ucode::v1::Step in_progress_ ABSL_GUARDED_BY(mu_) = ucode::v1::STEP_UNSPECIFIED;
  std::vector<JournalStep> pending_ ABSL_GUARDED_BY(mu_);
  bool pending_clears_in_progress_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status journal_error_ ABSL_GUARDED_BY(mu_);
  bool final_state_unwritten_ ABSL_GUARDED_BY(mu_) = false;
  // Serializes journal writes of this operation so step rows land in event order.
  absl::Mutex journal_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_OPERATION_RECORD_H_
