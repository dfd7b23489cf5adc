// Issue 11's attacks on ucoded, reproduced as they were made: a real unprivileged local user
// (uid 65534, through setpriv or daemon_probe's setresuid) against a root ucoded, a second
// ucoded started on the same paths, and a journal on a small filesystem that fills up.
// Runs outside Bazel's sandbox: it changes uid and mounts a tmpfs.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon_e2e/daemon_test_util.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/operations/fake_runner.h"

namespace ucode::daemon_e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr uid_t kNobody = 65534;
constexpr gid_t kUsersGid = 100;  // Debian's "users" group; nobody is not a member

// Writes `path` until the filesystem is full.
void Fill(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  const std::string kib(1024, 'x');
  while (out.write(kib.data(), kib.size()).flush()) {
  }
}

class DaemonHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() != 0) GTEST_SKIP() << "needs real root (runs as another user)";
    ASSERT_FALSE(dir_.path().empty());
  }
  // Runs `script` with sh as uid/gid 65534 and no supplementary groups.
  int AsNobody(const std::string& script) {
    Subprocess p({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                  "/bin/sh", "-c", script},
                 dir_.File("nobody.log"));
    return p.Wait();
  }
  std::vector<std::string> Ucoded(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {Runfile("vmm/daemon/ucoded"), "--runner=fake"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  // A fake-runner ucoded serving socket_, journal in a private directory.
  std::unique_ptr<Subprocess> StartServing(const std::vector<std::string>& extra,
                                           const std::string& prefix_program = "") {
    std::vector<std::string> argv = Ucoded({"--socket=" + socket_, "--journal=" + journal_});
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!prefix_program.empty()) {
      argv.insert(argv.begin(), {prefix_program, "--nofile=64:64", "--"});
    }
    auto p = std::make_unique<Subprocess>(argv, dir_.File("ucoded.log"));
    EXPECT_TRUE(WaitUntilServing(socket_, absl::Seconds(60))) << ReadFile(dir_.File("ucoded.log"));
    return p;
  }
  int Probe(uid_t uid, gid_t gid, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {Runfile("tests/daemon_e2e/daemon_probe"), socket_,
                                     std::to_string(uid), std::to_string(gid)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Subprocess p(argv, dir_.File("probe.log"));
    return p.Wait();
  }
  // A daemon_probe --hold=N as nobody; returns once its connections are made.
  std::unique_ptr<Subprocess> Holder(int n) {
    auto p = std::make_unique<Subprocess>(
        std::vector<std::string>{Runfile("tests/daemon_e2e/daemon_probe"), socket_,
                                 std::to_string(kNobody), std::to_string(kNobody),
                                 absl::StrCat("--hold=", n)},
        dir_.File("holder.log"));
    const absl::Time end = absl::Now() + absl::Seconds(60);
    while (ReadFile(dir_.File("holder.log")).find("connected") == std::string::npos &&
           absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return p;
  }
  grpc::Status RootDescribeHost() { return DescribeHost(*UnixStub(socket_)); }

  ScratchDir dir_;
  std::string socket_ = dir_.File("ucoded.sock");
  std::string journal_ = dir_.File("state/journal.sqlite");
};

// Item 1: nobody made `vmm/` 0777 beside a journal in a shared directory and planted
// fleet.txt.tmp as a symlink to a root-only file; root's ucoded overwrote that file.
TEST_F(DaemonHardeningTest, PlantedStateDirectoryIsRefused) {
  const std::string shared = dir_.File("tmp");
  ASSERT_EQ(mkdir(shared.c_str(), 0777), 0);
  ASSERT_EQ(chmod(shared.c_str(), 01777), 0);
  const std::string secret_dir = dir_.File("private");
  ASSERT_EQ(mkdir(secret_dir.c_str(), 0700), 0);
  const std::string secret = secret_dir + "/secret";
  std::ofstream(secret) << "precious";
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  ASSERT_EQ(AsNobody(absl::StrCat("mkdir -m 0777 ", shared, "/vmm && ln -s ", secret, " ", shared,
                                  "/vmm/fleet.txt.tmp")),
            0)
      << ReadFile(dir_.File("nobody.log"));

  // As the issue ran it: the journal in the shared directory, the state directory beside.
  std::vector<std::string> orchestrator = {"--runner=orchestrator", "--platform=emulated",
                                           "--vmm_fleet=2x1", "--socket=" + socket_};
  std::vector<std::string> argv = Ucoded(orchestrator);
  argv.push_back("--journal=" + shared + "/ucoded.db");
  EXPECT_NE(Subprocess(argv, dir_.File("first.log")).Wait(), 0);
  EXPECT_THAT(ReadFile(dir_.File("first.log")),
              HasSubstr("journal directory " + shared + ": mode 1777 lets group or others write"));
  // A private journal, the planted directory named as the state directory.
  argv = Ucoded(orchestrator);
  argv.push_back("--journal=" + journal_);
  argv.push_back("--vmm_state_dir=" + shared + "/vmm");
  EXPECT_NE(Subprocess(argv, dir_.File("second.log")).Wait(), 0);
  EXPECT_THAT(ReadFile(dir_.File("second.log")),
              HasSubstr(absl::StrCat(shared, "/vmm: owned by uid ", kNobody)));
  EXPECT_EQ(ReadFile(secret), "precious");
  struct stat st;
  EXPECT_NE(lstat((shared + "/vmm/fleet.txt").c_str(), &st), 0);
  // What ucoded does create is private.
  ASSERT_EQ(stat(dir_.File("state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

// Item 2: a second ucoded on the same paths unlinked the first one's socket, marked its
// running operation INTERRUPTED and accepted a new one.
TEST_F(DaemonHardeningTest, SecondInstanceIsRefusedAndTheFirstKeepsServing) {
  auto first = StartServing({"--fake_pause_at=STEP_ACTIVATED"});
  auto stub = UnixStub(socket_);
  v1::Operation op;
  ASSERT_TRUE(StartApply(*stub, TestImage(), &op).ok());

  std::vector<std::string> argv = Ucoded({"--socket=" + socket_, "--journal=" + journal_});
  EXPECT_EQ(Subprocess(argv, dir_.File("second.log")).Wait(), 1);
  EXPECT_THAT(
      ReadFile(dir_.File("second.log")),
      HasSubstr(absl::StrCat("ucoded pid ", first->pid(), " is running with the same journal")));
  // Its own journal, the same socket: the live socket is not replaced.
  argv = Ucoded({"--socket=" + socket_, "--journal=" + dir_.File("other/journal.sqlite")});
  EXPECT_EQ(Subprocess(argv, dir_.File("third.log")).Wait(), 1);
  EXPECT_THAT(ReadFile(dir_.File("third.log")),
              HasSubstr("accepts connections on it; refusing to replace a live socket"));

  ASSERT_TRUE(RootDescribeHost().ok());
  grpc::Status st;
  EXPECT_EQ(GetOperation(*stub, op.name(), &st).state(), v1::OPERATION_STATE_RUNNING);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// Item 6: a refused user held 2,000 connections; at the open-files limit accept4 failed
// and root's calls were UNAVAILABLE until the attacker left.
TEST_F(DaemonHardeningTest, RefusedConnectionsAreClosedAtOnce) {
  auto ucoded = StartServing({"--socket_mode=0666", "--allow_uids=0"}, "/usr/bin/prlimit");
  auto holder = Holder(500);
  EXPECT_THAT(ReadFile(dir_.File("holder.log")), HasSubstr("connected 500"));
  grpc::Status st = RootDescribeHost();
  EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << ReadFile(dir_.File("ucoded.log"));
  EXPECT_THAT(ReadFile(dir_.File("ucoded.log")), HasSubstr("not in the allow list"));
}

TEST_F(DaemonHardeningTest, AllowedUidIsCappedInConnections) {
  auto ucoded =
      StartServing({"--socket_mode=0666", "--allow_uids=0,65534", "--max_connections_per_uid=8"},
                   "/usr/bin/prlimit");
  auto holder = Holder(100);
  EXPECT_THAT(ReadFile(dir_.File("holder.log")), HasSubstr("connected 100"));
  // Accepted in order: the holder's first 8 are kept, this one is the 9th of its uid.
  EXPECT_EQ(Probe(kNobody, kNobody), static_cast<int>(grpc::UNAVAILABLE))
      << ReadFile(dir_.File("probe.log"));
  grpc::Status st = RootDescribeHost();
  EXPECT_TRUE(st.ok()) << st.error_message() << "\n" << ReadFile(dir_.File("ucoded.log"));
  EXPECT_THAT(ReadFile(dir_.File("ucoded.log")), HasSubstr("over its connection cap"));
}

// Item 8: SO_PEERCRED gives the primary gid only; a supplementary member was refused.
TEST_F(DaemonHardeningTest, SupplementaryGroupMemberIsAdmitted) {
  auto ucoded = StartServing({"--socket_mode=0666", "--allow_gids=users"});
  EXPECT_EQ(Probe(kNobody, kNobody, {absl::StrCat("--groups=", kUsersGid)}), 0)
      << ReadFile(dir_.File("probe.log"));
  EXPECT_EQ(Probe(kNobody, kNobody), static_cast<int>(grpc::UNAVAILABLE));
}

// Item 3: an admitted caller made root read /etc/shadow; the error quoted its bytes and
// size, and told existing root-only paths from missing ones.
TEST_F(DaemonHardeningTest, AdmittedCallerCannotMakeRootReadOutsideImageRoots) {
  const std::string images = dir_.File("images");
  ASSERT_EQ(mkdir(images.c_str(), 0755), 0);
  auto ucoded =
      StartServing({"--socket_mode=0666", "--allow_gids=users", "--image_root=" + images});
  const std::string group = absl::StrCat("--groups=", kUsersGid);
  EXPECT_EQ(Probe(kNobody, kNobody, {group, "--inspect=/etc/shadow"}),
            static_cast<int>(grpc::INVALID_ARGUMENT));
  const std::string shadow = ReadFile(dir_.File("probe.log"));
  EXPECT_THAT(shadow, HasSubstr("not beneath an image root"));
  struct stat st;
  ASSERT_EQ(stat("/etc/shadow", &st), 0);
  EXPECT_THAT(shadow, Not(HasSubstr(absl::StrCat(st.st_size))));
  EXPECT_THAT(shadow, Not(HasSubstr("root:")));
  EXPECT_EQ(Probe(kNobody, kNobody, {group, "--inspect=/etc/shadoW"}),
            static_cast<int>(grpc::INVALID_ARGUMENT));
  const std::string missing = ReadFile(dir_.File("probe.log"));
  EXPECT_EQ(absl::StrReplaceAll(missing.substr(shadow.size()), {{"/etc/shadoW", "/etc/shadow"}}),
            shadow);
}

// Item 4: with the journal on a small tmpfs that filled mid-operation, an update that
// changed the host was reported FAILED ("database or disk is full"), then INTERRUPTED
// after a restart. An in-process daemon, so that the fake runner can be held and resumed.
class FullJournalTest : public DaemonHardeningTest {
 protected:
  void SetUp() override {
    DaemonHardeningTest::SetUp();
    if (IsSkipped()) return;
    ASSERT_EQ(mkdir(fs_.c_str(), 0700), 0);
    ASSERT_EQ(mount("tmpfs", fs_.c_str(), "tmpfs", 0, "size=8m,mode=0700"), 0) << strerror(errno);
    mounted_ = true;
    options_.unix_socket = "";
    options_.journal_path = fs_ + "/journal.sqlite";
    Start();
  }
  void TearDown() override {
    stub_.reset();
    daemon_.reset();
    if (mounted_) umount2(fs_.c_str(), MNT_DETACH);
  }
  void Start() {
    stub_.reset();
    daemon_.reset();
    absl::StatusOr<std::unique_ptr<daemon::Daemon>> d = daemon::Daemon::Start(options_, &runner_);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    stub_ = v1::UcodeService::NewStub(daemon_->InProcessChannel());
  }
  grpc::Status Apply(v1::Operation* op) { return StartApply(*stub_, TestImage(), op); }
  // Starts an apply and holds it after its rendezvous was journaled and the host activated.
  std::string ApplyHeldAfterActivation() {
    runner_.PauseAt(v1::STEP_GUEST_VIEWS_SET);
    v1::Operation op;
    EXPECT_TRUE(Apply(&op).ok());
    EXPECT_TRUE(runner_.WaitUntilPausedAt(v1::STEP_GUEST_VIEWS_SET, absl::Seconds(30)));
    return op.name();
  }
  v1::Operation Finished(const std::string& name) {
    runner_.Resume(v1::STEP_GUEST_VIEWS_SET);
    return WatchToEnd(*stub_, name);
  }
  std::string Reserve() const { return options_.journal_path + ".reserve"; }

  const std::string fs_ = dir_.File("jfs");
  bool mounted_ = false;
  daemon::DaemonOptions options_;
  daemon::FakeUpdateRunner runner_;
  std::unique_ptr<daemon::Daemon> daemon_;
  std::unique_ptr<v1::UcodeService::Stub> stub_;
};

TEST_F(FullJournalTest, FullDiskAfterActivationNeverChangesTheOutcome) {
  const std::string name = ApplyHeldAfterActivation();
  Fill(fs_ + "/filler");
  v1::Operation done = Finished(name);
  EXPECT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  EXPECT_EQ(done.journal_error(), "");
  // The rows after the rendezvous found the disk full and used the reserve.
  struct stat reserve;
  ASSERT_EQ(stat(Reserve().c_str(), &reserve), 0);
  EXPECT_EQ(reserve.st_size, 0);
  // The journal proves it: a restarted daemon reports the same outcome.
  Start();
  grpc::Status st;
  EXPECT_EQ(GetOperation(*stub_, name, &st).state(), v1::OPERATION_STATE_SUCCEEDED);
  // No room for another operation's rows: refused before it starts.
  Fill(fs_ + "/filler2");
  v1::Operation op;
  st = Apply(&op);
  EXPECT_EQ(st.error_code(), grpc::RESOURCE_EXHAUSTED);
  EXPECT_THAT(st.error_message(), HasSubstr("cannot reserve"));
  ASSERT_EQ(unlink((fs_ + "/filler").c_str()), 0);
  ASSERT_EQ(unlink((fs_ + "/filler2").c_str()), 0);
  st = Apply(&op);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(WatchToEnd(*stub_, op.name()).state(), v1::OPERATION_STATE_SUCCEEDED);
}

// Past the reserve: the outcome stands, the journal's failure is reported beside it, and
// the journal catches up once there is room (here at shutdown), so a restart does not
// report a false INTERRUPTED.
TEST_F(FullJournalTest, JournalErrorIsReportedBesideTheOutcomeAndCaughtUp) {
  const std::string name = ApplyHeldAfterActivation();
  ASSERT_EQ(truncate(Reserve().c_str(), 0), 0);  // as if an earlier write had spent it
  Fill(fs_ + "/filler");
  v1::Operation done = Finished(name);
  EXPECT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  EXPECT_THAT(done.journal_error(), HasSubstr("full"));
  grpc::Status st;
  EXPECT_EQ(GetOperation(*stub_, name, &st).state(), v1::OPERATION_STATE_SUCCEEDED);
  ASSERT_EQ(unlink((fs_ + "/filler").c_str()), 0);
  Start();
  v1::Operation after = GetOperation(*stub_, name, &st);
  EXPECT_EQ(after.state(), v1::OPERATION_STATE_SUCCEEDED) << after.error().message();
  EXPECT_EQ(after.last_step(), v1::STEP_DONE);
}

}  // namespace
}  // namespace ucode::daemon_e2e
