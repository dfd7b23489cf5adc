// What a hostile admitted caller tried against the service (issue 11), in-process: host
// paths outside the image roots, a request_id reused for another request, many large
// images at once, bytes that are not UTF-8 in the journal, and the journal's own files.
// Attacks that need another local user or a full disk are in tests/daemon_e2e.
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "host/base/read_file.h"
#include "vmm/daemon/api/service_test_fixture.h"

namespace ucode::daemon {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ServiceHardeningTest : public ServiceTest {
 protected:
  grpc::Status InspectPath(const std::string& path, v1::InspectImageResponse* resp) {
    v1::InspectImageRequest r;
    r.mutable_image()->set_host_path(path);
    return Inspect(r, resp);
  }
};

// Issue 11 item 3: `inspect /etc/shadow` quoted bytes 32-35 of the file and its size.
TEST_F(ServiceHardeningTest, HostPathIsReadOnlyBeneathTheImageRoots) {
  const std::string secret_text(1234, 'S');
  const std::string secret = dir_ + "/secret";
  std::ofstream(secret) << secret_text;
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  v1::InspectImageResponse resp;

  grpc::Status outside = InspectPath(secret, &resp);
  EXPECT_EQ(outside.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(outside.error_message(), HasSubstr("not beneath an image root"));
  EXPECT_THAT(outside.error_message(), Not(HasSubstr("1234")));
  EXPECT_THAT(outside.error_message(), Not(HasSubstr("SSSS")));
  // The same answer whether the file exists or not.
  grpc::Status missing = InspectPath(dir_ + "/secreT", &resp);
  EXPECT_EQ(missing.error_message(),
            absl::StrReplaceAll(outside.error_message(), {{"/secret'", "/secreT'"}}));

  ASSERT_EQ(symlink(secret.c_str(), (images_ + "/link").c_str()), 0);
  grpc::Status link = InspectPath(images_ + "/link", &resp);
  EXPECT_EQ(link.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(link.error_message(), HasSubstr("leaves its image root"));
  EXPECT_THAT(link.error_message(), Not(HasSubstr("SSSS")));
  grpc::Status dotdot = InspectPath(images_ + "/../secret", &resp);
  EXPECT_THAT(dotdot.error_message(), HasSubstr("leaves its image root"));

  // Special files are refused by type before they are opened for reading: a FIFO opened
  // for reading would block, a device could act on the open (/dev/watchdog arms).
  ASSERT_EQ(mkfifo((images_ + "/fifo").c_str(), 0600), 0);
  EXPECT_THAT(InspectPath(images_ + "/fifo", &resp).error_message(),
              HasSubstr("not a regular file"));
  if (mknod((images_ + "/zero").c_str(), S_IFCHR | 0600, makedev(1, 5)) == 0) {
    EXPECT_THAT(InspectPath(images_ + "/zero", &resp).error_message(),
                HasSubstr("not a regular file"));
  }

  std::ofstream(images_ + "/ucode.bin") << TestImage();
  grpc::Status ok = InspectPath(images_ + "/ucode.bin", &resp);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(resp.images_size(), 1);
}

TEST_F(ServiceHardeningTest, RequestIdRetryWithADifferentRequestIsRefused) {
  v1::ApplyUpdateRequest r = ApplyRequest();
  r.set_request_id("retry-1");
  v1::Operation first;
  ASSERT_TRUE(Apply(r, &first).ok());
  grpc::Status st;
  WatchAll(first.name(), &st);
  v1::ApplyUpdateRequest other = r;
  other.set_mode(v1::UPDATE_MODE_FAST);
  v1::Operation op;
  st = Apply(other, &op);
  EXPECT_EQ(st.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("request_id: 'retry-1' was used by operations/1"));
  // The same after a restart: the original request's digest is journaled.
  Restart();
  EXPECT_EQ(Apply(other, &op).error_code(), grpc::INVALID_ARGUMENT);
  ASSERT_TRUE(Apply(r, &op).ok());
  EXPECT_EQ(op.name(), first.name());
  EXPECT_EQ(runner_.applies(), 1);
}

// Issue 11 item 10: 30 concurrent 16 MiB InspectImage calls reached 867 MB.
TEST_F(ServiceHardeningTest, ImageBytesInFlightAreBounded) {
  const std::string image = TestImage();
  options_.limits.max_image_bytes_in_flight = image.size();
  Restart();
  const v1::Operation op = ApplyPausedAt(v1::STEP_STAGED);
  // The running operation holds its image: nothing else fits.
  v1::InspectImageRequest r;
  r.mutable_image()->set_image_bytes(image);
  v1::InspectImageResponse resp;
  grpc::Status st = Inspect(r, &resp);
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("--max_image_bytes_in_flight"));
  runner_.Resume(v1::STEP_STAGED);
  EXPECT_EQ(FinalState(op.name()), v1::OPERATION_STATE_SUCCEEDED);
  st = Inspect(r, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// Issue 11 item 13: a row with invalid UTF-8 made Get/List fail with an empty gRPC error.
TEST_F(ServiceHardeningTest, BytesThatAreNotUtf8NeverBreakGetOrList) {
  runner_.FailAt(v1::STEP_ACTIVATED, absl::FailedPreconditionError("bad \xff\xfe bytes"));
  v1::Operation op;
  ASSERT_TRUE(Apply(ApplyRequest(), &op).ok());
  grpc::Status st;
  WatchAll(op.name(), &st);
  v1::Operation got = Get(op.name());
  EXPECT_THAT(got.error().message(), HasSubstr("bad \xEF\xBF\xBD\xEF\xBF\xBD bytes"));
  // A row written by hand (or an older version) is sanitised on read.
  daemon_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(options_.journal_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE operations SET error_message = X'6f6bc328ff', "
                         "kind = X'80'",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  Restart();
  got = Get(op.name());
  EXPECT_EQ(got.error().message(), "ok\xEF\xBF\xBD(\xEF\xBF\xBD");
  grpc::ClientContext ctx;
  v1::ListOperationsResponse list;
  st = stub_->ListOperations(&ctx, v1::ListOperationsRequest(), &list);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(list.operations(0).kind(), "\xEF\xBF\xBD");
}

// Issue 11 items 1 and 13: the journal was created 0644, in any directory it was given.
TEST_F(ServiceHardeningTest, JournalFilesArePrivate) {
  for (const char* suffix : {"", "-wal", ".lock", ".reserve"}) {
    struct stat st;
    ASSERT_EQ(stat((options_.journal_path + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << suffix;
  }
  // An older version's 0644 journal is narrowed.
  daemon_.reset();
  ASSERT_EQ(chmod(options_.journal_path.c_str(), 0644), 0);
  Restart();
  struct stat st;
  ASSERT_EQ(stat(options_.journal_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ServiceHardeningTest, JournalInAPlaceOthersCanWriteIsRefused) {
  daemon_.reset();
  const std::string shared = dir_ + "/shared";
  ASSERT_EQ(mkdir(shared.c_str(), 0777), 0);
  ASSERT_EQ(chmod(shared.c_str(), 01777), 0);  // like /tmp
  options_.journal_path = shared + "/journal.sqlite";
  absl::StatusOr<std::unique_ptr<Daemon>> d = Daemon::Start(options_, &runner_);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("mode 1777 lets group or others write"));
  // A journal path that is a symlink (to a root-only file) is never opened.
  const std::string target = dir_ + "/root-only";
  std::ofstream(target) << "precious";
  ASSERT_EQ(symlink(target.c_str(), (dir_ + "/link.sqlite").c_str()), 0);
  options_.journal_path = dir_ + "/link.sqlite";
  d = Daemon::Start(options_, &runner_);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("symlink"));
  EXPECT_EQ(ReadTextFile(target).value_or(""), "precious");
}

TEST_F(ServiceHardeningTest, SecondDaemonOnTheSameJournalIsRefused) {
  absl::StatusOr<std::unique_ptr<Daemon>> second = Daemon::Start(options_, &runner_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      second.status().message(),
      HasSubstr(absl::StrCat("ucoded pid ", getpid(), " is running with the same journal")));
}

}  // namespace
}  // namespace ucode::daemon
