// The registry and its journal without gRPC: recovery after a crash, the journal's
// "before the step" rows, the rendezvous window that is never fsynced, and the report.
#include <sqlite3.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/operations/journal.h"
#include "vmm/daemon/log.h"
#include "vmm/daemon/operations/operation_registry.h"

namespace ucode::daemon {
namespace {

using ::testing::HasSubstr;

std::string JournalPath() {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".sqlite";
}

// The step rows of operation `id` on disk, as (step, "begin"?) in write order: read
// through a connection of the test's own, so that only what the journal committed counts.
std::vector<std::pair<int, bool>> StepRowsOnDisk(const std::string& path, int64_t id) {
  std::vector<std::pair<int, bool>> out;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT step, phase FROM steps WHERE operation_id = ? ORDER BY rowid",
                       -1, &st, nullptr);
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
      out.emplace_back(sqlite3_column_int(st, 0),
                       std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 1))) ==
                           "begin");
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

TEST(Operations, StepRowsAreWrittenBeforeTheStep) {
  SetLogEnabled(false);
  const std::string path = JournalPath();
  auto journal = Journal::Open(path);
  ASSERT_TRUE(journal.ok()) << journal.status();
  OperationRegistry reg(journal->get());
  ASSERT_TRUE(reg.Recover([](const InterruptedOperation&) { return std::string(); }).ok());
  auto created = reg.Create("apply", "");
  ASSERT_TRUE(created.ok());
  OperationRecord& rec = *created->record;
  ASSERT_TRUE(rec.BeginStep(v1::STEP_STAGING, "stage").ok());
  const std::vector<std::pair<int, bool>> steps = StepRowsOnDisk(path, rec.id());
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].second);
  EXPECT_EQ(steps[0].first, v1::STEP_STAGING);
  rec.Emit(v1::STEP_STAGED, "staged", nullptr);
  ASSERT_TRUE(rec.BeginStep(v1::STEP_PARKED, "rendezvous").ok());
  rec.Emit(v1::STEP_PARKED, "parked", nullptr);
  rec.Emit(v1::STEP_ACTIVATED, "activated", nullptr);
  // Inside the rendezvous: held in memory, not yet written (no fsync while parked).
  EXPECT_EQ(StepRowsOnDisk(path, rec.id()).size(), 3u);
  rec.Emit(v1::STEP_GUEST_VIEWS_SET, "views", nullptr);
  rec.Emit(v1::STEP_RELEASED, "released", nullptr);
  EXPECT_EQ(StepRowsOnDisk(path, rec.id()).size(), 7u);
  reg.Finish(rec, v1::UpdateReport());
  EXPECT_EQ(reg.Running(), nullptr);
}

TEST(Operations, UnfinishedOperationIsInterruptedWithItsSteps) {
  SetLogEnabled(false);
  const std::string path = JournalPath();
  {
    auto journal = Journal::Open(path);
    ASSERT_TRUE(journal.ok());
    OperationRegistry reg(journal->get());
    ASSERT_TRUE(reg.Recover([](const InterruptedOperation&) { return std::string(); }).ok());
    auto created = reg.Create("apply", "req-7");
    ASSERT_TRUE(created.ok());
    OperationRecord& rec = *created->record;
    ASSERT_TRUE(rec.BeginStep(v1::STEP_STAGING, "stage").ok());
    rec.Emit(v1::STEP_STAGED, "staged", nullptr);
    ASSERT_TRUE(rec.BeginStep(v1::STEP_PARKED, "rendezvous").ok());
    rec.Emit(v1::STEP_PARKED, "parked", nullptr);
    // The process "dies" here: no Finish. (The record is simply dropped.)
  }
  auto journal = Journal::Open(path);
  ASSERT_TRUE(journal.ok());
  OperationRegistry reg(journal->get());
  FakeUpdateRunner runner;
  ASSERT_TRUE(reg.Recover([&](const InterruptedOperation& io) {
                   return runner.ConfirmGuestsRunning(io);
                 }).ok());
  ASSERT_EQ(runner.confirmed().size(), 1u);
  EXPECT_EQ(runner.confirmed()[0].interrupted_step, v1::STEP_PARKED);
  auto rec = reg.Find("operations/1");
  ASSERT_TRUE(rec.ok());
  v1::Operation op = (*rec)->Snapshot();
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_TRUE(op.done());
  EXPECT_EQ(op.last_step(), v1::STEP_STAGED);
  EXPECT_EQ(op.interrupted_step(), v1::STEP_PARKED);
  EXPECT_EQ(op.error().code(), static_cast<int>(absl::StatusCode::kAborted));
  EXPECT_EQ(op.report().interrupted().interrupted_step(), v1::STEP_PARKED);
  EXPECT_TRUE(op.report().interrupted().guests_confirmed_running());
  EXPECT_THAT(op.report().interrupted().guests(), HasSubstr("guests confirmed running"));
  // The slot is free, the request id still maps to it, and ids continue.
  auto again = reg.Create("apply", "req-7");
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->existing);
  auto next = reg.Create("apply", "");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->record->name(), "operations/2");
  reg.Finish(*next->record, absl::AbortedError("test"));
  // A second restart does not interrupt it again.
  OperationRegistry reg2(journal->get());
  int calls = 0;
  ASSERT_TRUE(reg2.Recover([&](const InterruptedOperation&) {
                    ++calls;
                    return std::string();
                  }).ok());
  EXPECT_EQ(calls, 0);
}

TEST(Operations, BeginStepAfterCancelIsRefusedUntilRendezvous) {
  SetLogEnabled(false);
  auto journal = Journal::Open(":memory:");
  ASSERT_TRUE(journal.ok());
  OperationRegistry reg(journal->get());
  auto created = reg.Create("apply", "");
  ASSERT_TRUE(created.ok());
  OperationRecord& rec = *created->record;
  ASSERT_TRUE(rec.RequestCancel().ok());
  EXPECT_TRUE(rec.cancel_token().Cancelled());
  EXPECT_EQ(rec.BeginStep(v1::STEP_PARKED, "rendezvous").code(),
            absl::StatusCode::kCancelled);
  reg.Finish(rec, absl::CancelledError("cancelled"));
  EXPECT_EQ(rec.Snapshot().state(), v1::OPERATION_STATE_CANCELLED);
}

// The report comes back typed after a restart (an unmeasured revision still absent); a
// report an older ucoded wrote as its own JSON leaves its row readable, with a note.
TEST(Operations, JournalKeepsTheTypedReportAndSurvivesAnOlderOne) {
  SetLogEnabled(false);
  const std::string path = JournalPath();
  int64_t older_id = 0;
  {
    auto journal = Journal::Open(path);
    ASSERT_TRUE(journal.ok());
    OperationRegistry reg(journal->get());
    ASSERT_TRUE(reg.Recover([](const InterruptedOperation&) { return std::string(); }).ok());
    v1::UpdateReport report;
    report.set_ok(true);
    report.add_vms()->set_revision_after(0x2b);
    for (int i = 0; i < 2; ++i) {
      auto created = reg.Create("apply", "");
      ASSERT_TRUE(created.ok()) << created.status();
      older_id = created->record->id();
      reg.Finish(*created->record, report);
    }
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string sql = absl::StrCat(
      "UPDATE operations SET report_json = '{\"ok\":true,\"mode\":\"strict\"}' WHERE id = ",
      older_id);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  auto journal = Journal::Open(path);
  ASSERT_TRUE(journal.ok());
  auto rows = (*journal)->LoadOperations();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  const v1::UpdateReport& kept = (*rows)[0].operation.report();
  EXPECT_TRUE(kept.ok());
  ASSERT_EQ(kept.vms_size(), 1);
  EXPECT_EQ(kept.vms(0).revision_after(), 0x2bu);
  EXPECT_FALSE(kept.vms(0).has_revision_before());
  const v1::Operation& older = (*rows)[1].operation;
  EXPECT_EQ(older.state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_FALSE(older.report().ok());
  ASSERT_EQ(older.report().notes_size(), 1);
  EXPECT_THAT(older.report().notes(0), HasSubstr("older ucoded"));
}

}  // namespace
}  // namespace ucode::daemon
