#include "vmm/daemon/operations/operation_record.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message.h"
#include "guest-agent/utf8.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {
namespace {

using ucode::v1::Operation;
using ucode::v1::OperationEvent;
using ucode::v1::Step;

// How long a watcher waits for news before it checks whether its client went away.
constexpr absl::Duration kWatchPollInterval = absl::Milliseconds(200);

// The event that ends the step a BeginStep announced: once it is journaled, nothing of
// that step is in flight any more.
Step ClosingStep(Step begun) {
  switch (begun) {
    case ucode::v1::STEP_STAGING:
      return ucode::v1::STEP_STAGED;
    case ucode::v1::STEP_PARKED:
      return ucode::v1::STEP_RELEASED;
    default:
      return begun;
  }
}

int64_t NowUs() { return absl::ToUnixMicros(absl::Now()); }

// Runner messages may carry any bytes (paths, guest output); proto3 strings must be UTF-8
// or the whole response fails to serialize.
std::string ValidUtf8(absl::string_view text) {
  return ucode_agent::ToValidUtf8(std::string_view(text.data(), text.size()));
}

// ValidUtf8 on every string of the runner's report (names, agent replies, errors).
void MakeValidUtf8(google::protobuf::Message& m) {
  const google::protobuf::Reflection& r = *m.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const google::protobuf::FieldDescriptor* f : fields) {
    const bool repeated = f->is_repeated();
    const int n = repeated ? r.FieldSize(m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) {
        std::string v = repeated ? r.GetRepeatedString(m, f, i) : r.GetString(m, f);
        v = ValidUtf8(v);
        repeated ? r.SetRepeatedString(&m, f, i, std::move(v)) : r.SetString(&m, f, std::move(v));
      } else if (f->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE) {
        MakeValidUtf8(repeated ? *r.MutableRepeatedMessage(&m, f, i) : *r.MutableMessage(&m, f));
      }
    }
  }
}

}  // namespace

OperationRecord::OperationRecord(int64_t id, Operation op, Journal* journal)
    : id_(id), name_(op.name()), journal_(journal), op_(std::move(op)) {
  absl::MutexLock lock(&mu_);  // not shared yet; taken for the lock annotations
  if (op_.done()) {
    // Loaded from the journal: its events died with the process that ran it. Watchers get
    // the final state.
    OperationEvent& e = AppendLocked(ucode::v1::STEP_DONE, "operation loaded from the journal");
    *e.mutable_final_state() = op_;
    history_dropped_ = true;
  }
}

Operation OperationRecord::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return op_;
}

OperationEvent& OperationRecord::AppendLocked(Step step, absl::string_view message) {
  uint64_t seq = events_.empty() ? 1 : events_.back().sequence() + 1;
  OperationEvent& e = events_.emplace_back();
  e.set_operation(name_);
  e.set_sequence(seq);
  e.set_time_unix_us(NowUs());
  e.set_step(step);
  e.set_message(ValidUtf8(message));
  op_.set_update_time_unix_ms(e.time_unix_us() / 1000);
  return e;
}

absl::Status OperationRecord::BeginStep(Step step, absl::string_view what,
                                        absl::Span<const std::string> paused_domains) {
  absl::MutexLock journal_lock(&journal_mu_);
  bool host_may_have_changed = false;
  {
    absl::MutexLock lock(&mu_);
    if (op_.done()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, ": BeginStep(", Step_Name(step), ") after the operation ended"));
    }
    host_may_have_changed = rendezvous_journaled_;
    if (!journal_error_.ok() && !host_may_have_changed) return journal_error_;
    if (cancel_requested_ && !rendezvous_begun_) {
      return absl::CancelledError(absl::StrCat(name_, ": cancelled by a caller before ",
                                               Step_Name(step)));
    }
    // Decided under the same lock RequestCancel takes: a cancel either lands before this
    // point (and the rendezvous never starts) or is refused.
    if (step == ucode::v1::STEP_PARKED) {
      rendezvous_begun_ = true;
      in_rendezvous_ = true;
    }
    in_progress_ = step;
  }
  FlushPending();
  absl::Status s = journal_->BeginStep(id_, step, what, NowUs(), paused_domains);
  absl::MutexLock lock(&mu_);
  if (s.ok()) {
    if (step == ucode::v1::STEP_PARKED) rendezvous_journaled_ = true;
    return s;
  }
  RecordJournalErrorLocked(s, Step_Name(step));
  // Past the rendezvous the host may have changed: the operation runs to its end and the
  // journal's failure is reported beside its outcome, never as it.
  return host_may_have_changed ? absl::OkStatus() : s;
}

void OperationRecord::RecordJournalErrorLocked(const absl::Status& s, absl::string_view step) {
  LogLine("journal_error",
          {{"operation", name_}, {"step", std::string(step)}, {"error", s.ToString()}});
  if (journal_error_.ok()) journal_error_ = s;
  if (rendezvous_journaled_ && op_.journal_error().empty()) {
    op_.set_journal_error(ValidUtf8(s.message()));
  }
}

void OperationRecord::Emit(Step step, absl::string_view message,
                           const ucode::v1::StagingProgress* staging) {
  bool journal_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (op_.done()) return;
    const bool progress = staging != nullptr;
    if (progress && events_.size() >= kMaxEventsPerOperation) {
      ++dropped_progress_events_;
      return;
    }
    OperationEvent& e = AppendLocked(step, message);
    if (staging != nullptr) *e.mutable_staging() = *staging;
    op_.set_last_step(step);
    if (progress) return;  // progress is for watchers; STEP_STAGED is journaled
    pending_.push_back(JournalStep{id_, step, false, std::string(message), e.time_unix_us()});
    if (in_progress_ != ucode::v1::STEP_UNSPECIFIED && step == ClosingStep(in_progress_)) {
      pending_clears_in_progress_ = true;
      in_progress_ = ucode::v1::STEP_UNSPECIFIED;
    }
    if (step == ucode::v1::STEP_RELEASED) in_rendezvous_ = false;
    journal_now = !in_rendezvous_;
  }
  if (journal_now) {
    absl::MutexLock journal_lock(&journal_mu_);
    FlushPending();
  }
}

void OperationRecord::FlushPending() {
  std::vector<JournalStep> rows;
  bool clears = false;
  {
    absl::MutexLock lock(&mu_);
    rows.swap(pending_);
    clears = pending_clears_in_progress_;
    pending_clears_in_progress_ = false;
  }
  if (rows.empty()) return;
  absl::Status s = journal_->RecordFinishedSteps(id_, rows, clears);
  if (s.ok()) return;
  absl::MutexLock lock(&mu_);
  RecordJournalErrorLocked(s, Step_Name(rows.back().step));
  // Kept, in order, for the next flush: a full disk that frees up still gets every row.
  rows.insert(rows.end(), std::make_move_iterator(pending_.begin()),
              std::make_move_iterator(pending_.end()));
  pending_ = std::move(rows);
  pending_clears_in_progress_ = pending_clears_in_progress_ || clears;
}

absl::Status OperationRecord::RequestCancel() {
  absl::MutexLock lock(&mu_);
  if (op_.done()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, " is already done (", OperationState_Name(op_.state()), ")"));
  }
  if (rendezvous_begun_) {
    return absl::FailedPreconditionError(absl::StrCat(
        name_, " has begun the rendezvous (last step ", Step_Name(op_.last_step()),
        "): it is no longer cancellable and runs to its end"));
  }
  cancel_requested_ = true;
  cancel_.Cancel();
  return absl::OkStatus();
}

bool OperationRecord::WaitDone(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return op_.done(); };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

void OperationRecord::Finish(const absl::StatusOr<ucode::v1::UpdateReport>& result,
                             const std::function<void()>& before_publish) {
  absl::MutexLock journal_lock(&journal_mu_);
  FlushPending();
  Operation final_op;
  uint64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    final_op = op_;
    dropped = dropped_progress_events_;
  }
  final_op.set_done(true);
  final_op.set_interrupted_step(ucode::v1::STEP_UNSPECIFIED);
  final_op.set_update_time_unix_ms(absl::ToUnixMillis(absl::Now()));
  absl::Status status = result.status();
  if (result.ok()) {
    *final_op.mutable_report() = *result;
    MakeValidUtf8(*final_op.mutable_report());
    if (!result->ok()) {  // a failed report without a code is still a failure
      status = absl::Status(static_cast<absl::StatusCode>(result->error_code()), result->error());
      if (status.ok()) status = absl::UnknownError(result->error());
    }
  }
  if (status.ok()) {
    final_op.set_state(ucode::v1::OPERATION_STATE_SUCCEEDED);
    final_op.set_last_step(ucode::v1::STEP_DONE);
  } else {
    final_op.set_state(status.code() == absl::StatusCode::kCancelled
                           ? ucode::v1::OPERATION_STATE_CANCELLED
                           : ucode::v1::OPERATION_STATE_FAILED);
    final_op.mutable_error()->set_code(static_cast<int32_t>(status.code()));
    final_op.mutable_error()->set_message(ValidUtf8(status.message()));
  }
  // Durable before anyone is told: a client that saw DONE finds the same answer after a
  // crash.
  absl::Status s = journal_->UpdateOperation(id_, final_op);
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    final_state_unwritten_ = true;
  }
  before_publish();
  absl::MutexLock lock(&mu_);
  if (!s.ok()) RecordJournalErrorLocked(s, "final state");
  final_op.set_journal_error(op_.journal_error());
  if (!s.ok() && final_op.journal_error().empty()) {
    final_op.set_journal_error(ValidUtf8(s.message()));
  }
  op_ = final_op;
  in_progress_ = ucode::v1::STEP_UNSPECIFIED;
  in_rendezvous_ = false;
  std::string message = absl::StrCat(OperationState_Name(final_op.state()));
  if (!result.ok()) absl::StrAppend(&message, ": ", result.status().ToString());
  if (dropped > 0) absl::StrAppend(&message, " (", dropped, " staging progress events not kept)");
  OperationEvent& e = AppendLocked(ucode::v1::STEP_DONE, message);
  *e.mutable_final_state() = op_;
}

absl::Status OperationRecord::Watch(const std::function<bool(const OperationEvent&)>& write,
                                    const std::function<bool()>& stopped) const {
  uint64_t next_seq = 1;
  for (;;) {
    std::vector<OperationEvent> batch;
    bool finished = false;
    {
      absl::MutexLock lock(&mu_);
      auto news = [this, &next_seq]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return (!events_.empty() && events_.back().sequence() >= next_seq);
      };
      mu_.AwaitWithTimeout(absl::Condition(&news), kWatchPollInterval);
      if (!events_.empty() && events_.back().sequence() >= next_seq) {
        uint64_t first = events_.front().sequence();
        size_t i = next_seq > first ? next_seq - first : 0;
        batch.assign(events_.begin() + i, events_.end());
        next_seq = events_.back().sequence() + 1;
      }
      // Done is published together with the DONE event, so "done and nothing newer" means
      // this watcher has now been given everything.
      finished = op_.done() && events_.back().sequence() < next_seq;
    }
    for (const OperationEvent& e : batch) {
      if (!write(e)) return absl::CancelledError(absl::StrCat("watcher of ", name_, " went away"));
    }
    if (finished) return absl::OkStatus();
    if (stopped()) return absl::CancelledError(absl::StrCat("watch of ", name_, " stopped"));
  }
}

bool OperationRecord::JournalBehind() const {
  absl::MutexLock lock(&mu_);
  return final_state_unwritten_ || !pending_.empty();
}

absl::Status OperationRecord::CatchUpJournal() {
  absl::MutexLock journal_lock(&journal_mu_);
  FlushPending();
  Operation op;
  {
    absl::MutexLock lock(&mu_);
    if (!pending_.empty()) return journal_error_;
    if (!op_.done()) return absl::OkStatus();
    op = op_;
  }
  // Always rewritten: rows flushed just now moved the journal's last step back.
  absl::Status s = journal_->UpdateOperation(id_, op);
  if (!s.ok()) return s;
  absl::MutexLock lock(&mu_);
  final_state_unwritten_ = false;
  LogLine("journal_caught_up", {{"operation", name_}});
  return absl::OkStatus();
}

void OperationRecord::DropHistory() {
  absl::MutexLock lock(&mu_);
  if (!op_.done() || history_dropped_ || events_.empty()) return;
  OperationEvent last = events_.back();
  events_.clear();
  events_.push_back(std::move(last));
  history_dropped_ = true;
}

}  // namespace ucode::daemon
