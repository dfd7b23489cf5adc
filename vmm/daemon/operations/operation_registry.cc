#include "vmm/daemon/operations/operation_registry.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {
namespace {

using ucode::v1::Operation;

constexpr absl::string_view kNamePrefix = "operations/";
// Page tokens are "before:<id>": opaque to callers, checked when given back.
constexpr absl::string_view kTokenPrefix = "before:";

ucode::v1::UpdateReport InterruptedReport(const InterruptedOperation& io,
                                          const ucode::v1::Status& error,
                                          const absl::StatusOr<std::string>& account) {
  ucode::v1::UpdateReport r;
  r.set_operation(io.operation);
  r.set_last_step(io.last_step);
  r.set_error_code(error.code());
  r.set_error(error.message());
  ucode::v1::Interruption& i = *r.mutable_interrupted();
  i.set_interrupted_step(io.interrupted_step);
  i.set_guests_confirmed_running(account.ok());
  i.set_guests(account.ok() ? *account : account.status().ToString());
  return r;
}

// "operations/<id>" → id, or INVALID_ARGUMENT naming the check.
absl::StatusOr<int64_t> ParseOperationName(absl::string_view name) {
  int64_t id = 0;
  if (!absl::StartsWith(name, kNamePrefix) ||
      !absl::SimpleAtoi(name.substr(kNamePrefix.size()), &id) || id <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: '", name.substr(0, 80), "' is not of the form operations/<id>"));
  }
  return id;
}

}  // namespace

absl::Status OperationRegistry::Recover(
    const std::function<absl::StatusOr<std::string>(const InterruptedOperation&)>& confirm) {
  ASSIGN_OR_RETURN(std::vector<JournalRecord> rows, journal_->LoadOperations());
  absl::MutexLock lock(&mu_);
  for (JournalRecord& row : rows) {
    Operation& op = row.operation;
    if (!op.done()) {
      InterruptedOperation io{op.name(), op.kind(), op.last_step(), op.interrupted_step(), {}};
      ASSIGN_OR_RETURN(io.paused_domains, journal_->LoadPausedDomains(row.id));
      absl::StatusOr<std::string> account = confirm(io);
      op.set_done(true);
      op.set_state(ucode::v1::OPERATION_STATE_INTERRUPTED);
      op.mutable_error()->set_code(static_cast<int32_t>(absl::StatusCode::kAborted));
      op.mutable_error()->set_message(absl::StrCat(
          "ucoded stopped during ", Step_Name(op.interrupted_step()),
          " (begun, not finished); last finished step ", Step_Name(op.last_step())));
      *op.mutable_report() = InterruptedReport(io, op.error(), account);
      op.set_update_time_unix_ms(absl::ToUnixMillis(absl::Now()));
      RETURN_IF_ERROR(journal_->UpdateOperation(row.id, op));
      LogLine("operation_interrupted",
              {{"operation", op.name()},
               {"last_step", Step_Name(op.last_step())},
               {"interrupted_step", Step_Name(op.interrupted_step())},
               {"guests", account.ok() ? *account : account.status().ToString()}});
    }
    if (!row.request_id.empty()) {
      by_request_id_[row.request_id] = RequestIdUse{row.id, row.request_digest};
    }
    next_id_ = std::max(next_id_, row.id + 1);
    records_[row.id] = std::make_shared<OperationRecord>(row.id, std::move(op), journal_);
  }
  return absl::OkStatus();
}

absl::StatusOr<OperationRegistry::Created> OperationRegistry::Create(
    absl::string_view kind, absl::string_view request_id, absl::string_view request_digest) {
  CatchUpJournal();
  absl::MutexLock lock(&mu_);
  if (!request_id.empty()) {
    auto it = by_request_id_.find(request_id);
    if (it != by_request_id_.end()) {
      const std::shared_ptr<OperationRecord>& existing = records_.at(it->second.id);
      if (it->second.digest != request_digest) {
        return absl::InvalidArgumentError(
            absl::StrCat("request_id: '", request_id, "' was used by ", existing->name(),
                         " for a different request; a retry must repeat the request exactly, a new "
                         "request needs a new id"));
      }
      return Created{existing, true};
    }
  }
  if (running_ != nullptr) {
    Operation r = running_->Snapshot();
    return absl::AbortedError(absl::StrCat(
        r.name(), " (", r.kind(), ", last step ", Step_Name(r.last_step()),
        ") is running; ucoded runs one update per host at a time"));
  }
  // Room for the rows written after the rendezvous, taken before anything can change.
  RETURN_IF_ERROR(journal_->Reserve());
  int64_t id = next_id_;
  Operation op;
  op.set_name(absl::StrCat(kNamePrefix, id));
  op.set_kind(std::string(kind));
  op.set_state(ucode::v1::OPERATION_STATE_RUNNING);
  int64_t now_ms = absl::ToUnixMillis(absl::Now());
  op.set_create_time_unix_ms(now_ms);
  op.set_update_time_unix_ms(now_ms);
  RETURN_IF_ERROR(journal_->InsertOperation(id, request_id, request_digest, op));
  ++next_id_;
  auto record = std::make_shared<OperationRecord>(id, std::move(op), journal_);
  records_[id] = record;
  if (!request_id.empty()) {
    by_request_id_[std::string(request_id)] = RequestIdUse{id, std::string(request_digest)};
  }
  running_ = record;
  TrimHistoriesLocked();
  return Created{record, false};
}

void OperationRegistry::Finish(OperationRecord& record,
                               const absl::StatusOr<ucode::v1::UpdateReport>& result) {
  record.Finish(result, [&] {
    absl::MutexLock lock(&mu_);
    if (running_.get() == &record) {
      if (record.JournalBehind()) journal_behind_.push_back(running_);
      running_.reset();
    }
  });
}

void OperationRegistry::CatchUpJournal() {
  std::vector<std::shared_ptr<OperationRecord>> behind;
  {
    absl::MutexLock lock(&mu_);
    behind.swap(journal_behind_);
  }
  std::vector<std::shared_ptr<OperationRecord>> still;
  for (const std::shared_ptr<OperationRecord>& record : behind) {
    if (!record->CatchUpJournal().ok()) still.push_back(record);
  }
  absl::MutexLock lock(&mu_);
  journal_behind_.insert(journal_behind_.end(), still.begin(), still.end());
}

absl::StatusOr<std::shared_ptr<OperationRecord>> OperationRegistry::Find(
    absl::string_view name) const {
  ASSIGN_OR_RETURN(int64_t id, ParseOperationName(name));
  absl::MutexLock lock(&mu_);
  auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(absl::StrCat(name, " does not exist"));
  return it->second;
}

std::shared_ptr<OperationRecord> OperationRegistry::Running() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

absl::StatusOr<ucode::v1::ListOperationsResponse> OperationRegistry::List(
    int32_t page_size, absl::string_view page_token) const {
  if (page_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", page_size, " is negative"));
  }
  page_size = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  int64_t before = INT64_MAX;
  if (!page_token.empty()) {
    if (!absl::StartsWith(page_token, kTokenPrefix) ||
        !absl::SimpleAtoi(page_token.substr(kTokenPrefix.size()), &before) || before <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "page_token: '", page_token.substr(0, 80), "' is not a token from ListOperations"));
    }
  }
  ucode::v1::ListOperationsResponse out;
  absl::MutexLock lock(&mu_);
  auto it = records_.lower_bound(before);
  while (it != records_.begin() && out.operations_size() < page_size) {
    --it;
    *out.add_operations() = it->second->Snapshot();
  }
  if (it != records_.begin()) out.set_next_page_token(absl::StrCat(kTokenPrefix, it->first));
  return out;
}

void OperationRegistry::TrimHistoriesLocked() {
  if (records_.size() <= kOperationsWithHistory) return;
  auto it = records_.end();
  std::advance(it, -static_cast<long>(kOperationsWithHistory));
  // Only the record just past the window can have newly fallen out of it.
  --it;
  it->second->DropHistory();
}

}  // namespace ucode::daemon
