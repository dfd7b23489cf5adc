#include "vmm/daemon/operations/journal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "guest-agent/utf8.h"
#include "host/base/status_macros.h"
#include "host/base/private_files.h"
#include "proto/json.h"

namespace ucode::daemon {
namespace {

using ucode::v1::Operation;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS operations (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  request_id TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL,
  last_step INTEGER NOT NULL DEFAULT 0,
  in_progress_step INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  error_code INTEGER NOT NULL DEFAULT 0,
  error_message TEXT NOT NULL DEFAULT '',
  report_json TEXT NOT NULL DEFAULT '',  -- ucode.v1.UpdateReport as proto/json.h prints it
  create_ms INTEGER NOT NULL,
  update_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
  operation_id INTEGER NOT NULL REFERENCES operations(id),
  step INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('begin', 'end')),
  message TEXT NOT NULL,
  time_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_by_operation ON steps(operation_id);
CREATE TABLE IF NOT EXISTS paused_domains (
  operation_id INTEGER NOT NULL REFERENCES operations(id),
  name TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS paused_domains_by_operation ON paused_domains(operation_id);
)sql";
// Added after the first release: journals written before it lack the column.
constexpr const char* kAddRequestDigest =
    "ALTER TABLE operations ADD COLUMN request_digest TEXT NOT NULL DEFAULT ''";

// A full disk is RESOURCE_EXHAUSTED, so that writers can tell it from other failures.
absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  std::string text =
      absl::StrCat("journal ", what, ": ", db != nullptr ? sqlite3_errmsg(db) : "no database");
  if (db != nullptr && sqlite3_errcode(db) == SQLITE_FULL) {
    return absl::ResourceExhaustedError(text);
  }
  return absl::InternalError(text);
}

std::string ValidText(absl::string_view v) {
  return ucode_agent::ToValidUtf8(std::string_view(v.data(), v.size()));
}

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status Prepared(absl::string_view what) const {
    return rc_ == SQLITE_OK ? absl::OkStatus() : SqliteError(db_, what);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, absl::string_view v) {
    const std::string text = ValidText(v);
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  // `v...` to parameters 1, 2, ...
  template <typename... T>
  void BindAll(const T&... v) {
    int i = 0;
    (Bind(++i, v), ...);
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  absl::Status Run(absl::string_view what) {
    int rc = Step();
    return rc == SQLITE_DONE ? absl::OkStatus() : SqliteError(db_, what);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    // Rows written by older versions, or by hand, may hold any bytes.
    return t == nullptr ? std::string()
                        : ValidText(absl::string_view(reinterpret_cast<const char*>(t),
                                                      sqlite3_column_bytes(stmt_, col)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Rolls back unless committed: every multi-row write is all or nothing.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Transaction() {
    if (ok_ && !committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  absl::Status Began() const { return ok_ ? absl::OkStatus() : SqliteError(db_, "BEGIN"); }
  absl::Status Commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "COMMIT");
    }
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool committed_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path) {
  const bool on_disk = path != ":memory:";
  if (on_disk) {
    RETURN_IF_ERROR(EnsurePrivateDir(DirOf(path), "journal directory"));
    // Created here 0600 (SQLite would use 0644 and follow a symlink); SQLite gives its
    // -wal and -shm files the database's mode.
    for (const std::string& file : {path, path + "-wal", path + "-shm"}) {
      struct stat st;
      if (file != path && lstat(file.c_str(), &st) != 0) continue;
      ASSIGN_OR_RETURN(UniqueFd fd, OpenPrivateFile(file));
    }
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, absl::StrCat("open ", path));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Journal> journal(new Journal(db));
  absl::MutexLock lock(&journal->mu_);
  // WAL: a commit is one append + fsync of the log, and readers never block the writer.
  // synchronous=FULL: the WAL is fsynced at every commit, so a row written "before a step"
  // survives a power cut, not only a crash of ucoded.
  RETURN_IF_ERROR(journal->ExecLocked("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(journal->ExecLocked("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(journal->ExecLocked("PRAGMA foreign_keys=ON"));
  sqlite3_busy_timeout(db, 5000);
  RETURN_IF_ERROR(journal->ExecLocked(kSchema));
  if (absl::Status s = journal->ExecLocked(kAddRequestDigest);
      !s.ok() && !absl::StrContains(s.message(), "duplicate column")) {
    return s;
  }
  if (on_disk) {
    journal->reserve_path_ = path + ".reserve";
    ASSIGN_OR_RETURN(journal->reserve_fd_, OpenPrivateFile(journal->reserve_path_));
  }
  return journal;
}

absl::Status Journal::Reserve() {
  absl::MutexLock lock(&mu_);
  if (reserve_path_.empty()) return absl::OkStatus();
  // fallocate, not ftruncate: the blocks must really be taken from the filesystem.
  int err = posix_fallocate(reserve_fd_.get(), 0, kJournalReserveBytes);
  if (err != 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("journal: cannot reserve ", kJournalReserveBytes >> 20,
                     " MiB for the operation's "
                     "journal rows in ",
                     reserve_path_, ": ", ErrnoStatus(err, "fallocate").message(),
                     "; free space on the journal's filesystem first"));
  }
  return absl::OkStatus();
}

absl::Status Journal::WriteLocked(const std::function<absl::Status()>& write) {
  absl::Status s = write();
  if (s.code() != absl::StatusCode::kResourceExhausted || reserve_path_.empty()) return s;
  struct stat st;
  if (fstat(reserve_fd_.get(), &st) != 0 || st.st_size == 0) return s;
  // The room kept for exactly this: give it back to the filesystem and write again.
  if (ftruncate(reserve_fd_.get(), 0) != 0) return s;
  return write();
}

Journal::~Journal() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status Journal::ExecLocked(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat("journal exec '", absl::string_view(sql).substr(0, 40), "': ",
                     err != nullptr ? err : "?"));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::Status Journal::InsertOperation(int64_t id, absl::string_view request_id,
                                      absl::string_view request_digest, const Operation& op) {
  absl::MutexLock lock(&mu_);
  return WriteLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Statement st(db_,
                 "INSERT INTO operations (id, kind, request_id, request_digest, state, "
                 "create_ms, update_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    RETURN_IF_ERROR(st.Prepared("prepare insert operation"));
    st.BindAll(id, op.kind(), request_id, request_digest, static_cast<int64_t>(op.state()),
               op.create_time_unix_ms(), op.update_time_unix_ms());
    return st.Run(absl::StrCat("insert operation ", id));
  });
}

absl::Status Journal::UpdateOperation(int64_t id, const Operation& op) {
  absl::MutexLock lock(&mu_);
  return WriteLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Statement st(db_,
                 "UPDATE operations SET state = ?, last_step = ?, in_progress_step = ?, "
                 "done = ?, error_code = ?, error_message = ?, report_json = ?, update_ms = ? "
                 "WHERE id = ?");
    RETURN_IF_ERROR(st.Prepared("prepare update operation"));
    st.BindAll(static_cast<int64_t>(op.state()), static_cast<int64_t>(op.last_step()),
               static_cast<int64_t>(op.interrupted_step()), int64_t{op.done() ? 1 : 0},
               static_cast<int64_t>(op.error().code()), op.error().message(),
               op.has_report() ? ProtoJson(op.report()) : "", op.update_time_unix_ms(), id);
    return st.Run(absl::StrCat("update operation ", id));
  });
}

absl::Status Journal::BeginStep(int64_t id, ucode::v1::Step step, absl::string_view what,
                                int64_t time_unix_us,
                                absl::Span<const std::string> paused_domains) {
  absl::MutexLock lock(&mu_);
  return WriteLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Began());
    Statement row(db_,
                  "INSERT INTO steps (operation_id, step, phase, message, time_us) "
                  "VALUES (?, ?, 'begin', ?, ?)");
    RETURN_IF_ERROR(row.Prepared("prepare insert step"));
    row.BindAll(id, static_cast<int64_t>(step), what, time_unix_us);
    RETURN_IF_ERROR(row.Run(absl::StrCat("insert begin step ", step, " of operation ", id)));
    for (const std::string& name : paused_domains) {
      Statement dom(db_, "INSERT INTO paused_domains (operation_id, name) VALUES (?, ?)");
      RETURN_IF_ERROR(dom.Prepared("prepare insert paused domain"));
      dom.BindAll(id, name);
      RETURN_IF_ERROR(dom.Run(absl::StrCat("insert paused domain of operation ", id)));
    }
    Statement up(db_, "UPDATE operations SET in_progress_step = ?, update_ms = ? WHERE id = ?");
    RETURN_IF_ERROR(up.Prepared("prepare update in-progress step"));
    up.BindAll(static_cast<int64_t>(step), time_unix_us / 1000, id);
    RETURN_IF_ERROR(up.Run(absl::StrCat("update in-progress step of operation ", id)));
    return tx.Commit();
  });
}

absl::Status Journal::RecordFinishedSteps(int64_t id, const std::vector<JournalStep>& steps,
                                          bool clears_in_progress) {
  if (steps.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  return WriteLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Transaction tx(db_);
    RETURN_IF_ERROR(tx.Began());
    for (const JournalStep& s : steps) {
      Statement row(db_,
                    "INSERT INTO steps (operation_id, step, phase, message, time_us) "
                    "VALUES (?, ?, 'end', ?, ?)");
      RETURN_IF_ERROR(row.Prepared("prepare insert step"));
      row.BindAll(id, static_cast<int64_t>(s.step), s.message, s.time_unix_us);
      RETURN_IF_ERROR(row.Run(absl::StrCat("insert end step ", s.step, " of operation ", id)));
    }
    Statement up(db_,
                 clears_in_progress
                     ? "UPDATE operations SET last_step = ?, update_ms = ?, in_progress_step = 0 "
                       "WHERE id = ?"
                     : "UPDATE operations SET last_step = ?, update_ms = ? WHERE id = ?");
    RETURN_IF_ERROR(up.Prepared("prepare update last step"));
    up.BindAll(static_cast<int64_t>(steps.back().step), steps.back().time_unix_us / 1000, id);
    RETURN_IF_ERROR(up.Run(absl::StrCat("update last step of operation ", id)));
    return tx.Commit();
  });
}

absl::StatusOr<std::vector<JournalRecord>> Journal::LoadOperations() {
  absl::MutexLock lock(&mu_);
  Statement st(db_,
               "SELECT id, kind, request_id, state, last_step, in_progress_step, done, "
               "error_code, error_message, report_json, create_ms, update_ms, request_digest "
               "FROM operations ORDER BY id");
  RETURN_IF_ERROR(st.Prepared("prepare load operations"));
  std::vector<JournalRecord> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) {
    JournalRecord r;
    r.id = st.Int(0);
    r.request_id = st.Text(2);
    Operation& op = r.operation;
    op.set_name(absl::StrCat("operations/", r.id));
    op.set_kind(st.Text(1));
    op.set_state(static_cast<ucode::v1::OperationState>(st.Int(3)));
    op.set_last_step(static_cast<ucode::v1::Step>(st.Int(4)));
    op.set_interrupted_step(static_cast<ucode::v1::Step>(st.Int(5)));
    op.set_done(st.Int(6) != 0);
    if (st.Int(7) != 0) {
      op.mutable_error()->set_code(static_cast<int32_t>(st.Int(7)));
      op.mutable_error()->set_message(st.Text(8));
    }
    if (const std::string report = st.Text(9); !report.empty()) {
      // An older ucoded wrote its own JSON here: keep the row, say why its report is gone.
      if (absl::Status s = ParseProtoJson(report, *op.mutable_report()); !s.ok()) {
        op.mutable_report()->Clear();
        op.mutable_report()->add_notes(
            absl::StrCat("the journal's report was not readable (an older ucoded's?): ",
                         s.message()));
      }
    }
    op.set_create_time_unix_ms(st.Int(10));
    op.set_update_time_unix_ms(st.Int(11));
    r.request_digest = st.Text(12);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "load operations");
  return out;
}

absl::StatusOr<std::vector<std::string>> Journal::LoadPausedDomains(int64_t id) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "SELECT name FROM paused_domains WHERE operation_id = ? ORDER BY rowid");
  RETURN_IF_ERROR(st.Prepared("prepare load paused domains"));
  st.Bind(1, id);
  std::vector<std::string> out;
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) out.push_back(st.Text(0));
  if (rc != SQLITE_DONE) {
    return SqliteError(db_, absl::StrCat("load paused domains of operation ", id));
  }
  return out;
}

}  // namespace ucode::daemon
