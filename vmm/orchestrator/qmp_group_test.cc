#include "vmm/orchestrator/qmp_group.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace ucode::orchestrator {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(20);

// A QEMU with two QMP monitors: one for the group, one for the test to observe and
// interfere. `-machine none` has no vCPUs but the full run state machine; the q35 one
// has 2 vCPUs (TCG, halting in firmware). `prelaunch` starts it with -S.
class Qemu {
 public:
  Qemu(const std::string& dir, const std::string& name, bool q35, bool prelaunch)
      : group_sock_(absl::StrCat(dir, "/", name, ".qmp")),
        test_sock_(absl::StrCat(dir, "/", name, ".test.qmp")) {
    std::vector<std::string> argv = {"qemu-system-x86_64", "-nodefaults", "-display", "none",
                                     "-qmp", absl::StrCat("unix:", group_sock_, ",server=on,wait=off"),
                                     "-qmp", absl::StrCat("unix:", test_sock_, ",server=on,wait=off")};
    for (const char* a : q35 ? std::vector<const char*>{"-machine", "q35", "-accel", "tcg",
                                                        "-smp", "2", "-m", "64"}
                             : std::vector<const char*>{"-machine", "none"}) {
      argv.push_back(a);
    }
    if (prelaunch) argv.push_back("-S");
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0) pid_ = -1;
    if (pid_ > 0) {
      absl::StatusOr<std::unique_ptr<qmp::QmpClient>> c = qmp::QmpClient::Connect(test_sock_, kTimeout);
      if (c.ok()) observer_ = *std::move(c);
    }
  }
  ~Qemu() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] bool ok() const { return observer_ != nullptr; }
  QmpVmSpec spec(const std::string& name) const { return {name, group_sock_}; }
  std::string State() { return observer_->QueryStatus(kTimeout).value_or("?"); }
  qmp::QmpClient& observer() { return *observer_; }

 private:
  std::string group_sock_, test_sock_;
  pid_t pid_ = -1;
  std::unique_ptr<qmp::QmpClient> observer_;
};

class QmpGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0) {
      GTEST_SKIP() << "qemu-system-x86_64 not installed (qemu-system-x86; tools/install-deps)";
    }
    char tmpl[] = "/tmp/qmpg-XXXXXX";  // short: Unix socket paths are at most 107 bytes
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) (void)system(absl::StrCat("rm -rf ", dir_).c_str());
  }
  std::string dir_;
};

TEST_F(QmpGroupTest, StopsAndContinuesEveryVmOnceAndMarksViewsStale) {
  Qemu a(dir_, "a", /*q35=*/true, false), b(dir_, "b", false, false);
  ASSERT_TRUE(a.ok() && b.ok());
  absl::StatusOr<std::unique_ptr<QmpGuestGroup>> g =
      QmpGuestGroup::Create({a.spec("a"), b.spec("b")}, kTimeout);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ((*g)->kind(), "qmp");
  EXPECT_EQ((*g)->total_vcpus(), 2);

  ASSERT_TRUE((*g)->Park(kTimeout).ok());
  EXPECT_EQ(a.State(), "paused");
  EXPECT_EQ(b.State(), "paused");
  GuestViewResult views = (*g)->SetRevision(7, kTimeout);
  EXPECT_TRUE(views.status.ok());
  ASSERT_TRUE((*g)->Release(kTimeout).ok());
  EXPECT_TRUE((*g)->Release(kTimeout).ok());  // nothing parked
  EXPECT_EQ(a.State(), "running");
  EXPECT_EQ(b.State(), "running");
  for (Qemu* q : {&a, &b}) {  // exactly one STOP and one RESUME each
    EXPECT_TRUE(q->observer().WaitForEvent("STOP", kTimeout).ok());
    EXPECT_TRUE(q->observer().WaitForEvent("RESUME", kTimeout).ok());
    EXPECT_FALSE(q->observer().WaitForEvent("STOP", absl::Milliseconds(50)).ok());
    EXPECT_FALSE(q->observer().WaitForEvent("RESUME", absl::Milliseconds(50)).ok());
  }
  std::vector<VmReport> report = (*g)->Report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].vcpus, 2);
  EXPECT_EQ(report[0].view, ViewStatus::kStaleUntilRestart);
  EXPECT_THAT(report[0].view_detail, HasSubstr("stale until restart"));
  EXPECT_GT(report[0].time_parked, absl::ZeroDuration());
  EXPECT_FALSE(report[0].guest_measured);
}

TEST_F(QmpGroupTest, ParkIsAllOrNothingAndLeavesOthersPausesAlone) {
  Qemu a(dir_, "a", false, false), b(dir_, "b", false, /*prelaunch=*/true),
      c(dir_, "c", false, false);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(c.observer().Stop(kTimeout).ok());  // someone else paused c
  {
    absl::StatusOr<std::unique_ptr<QmpGuestGroup>> g =
        QmpGuestGroup::Create({a.spec("a"), b.spec("b"), c.spec("c")}, kTimeout);
    ASSERT_TRUE(g.ok()) << g.status();
    absl::Status s = (*g)->Park(kTimeout);
    EXPECT_TRUE(absl::IsAborted(s)) << s;
    EXPECT_THAT(s.message(), HasSubstr("b: run state is 'prelaunch'"));
    EXPECT_EQ(a.State(), "running");
    EXPECT_EQ(c.State(), "paused");
  }
  absl::StatusOr<std::unique_ptr<QmpGuestGroup>> g =
      QmpGuestGroup::Create({a.spec("a"), c.spec("c")}, kTimeout);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_TRUE((*g)->Park(kTimeout).ok());
  (void)(*g)->SetRevision(7, kTimeout);
  ASSERT_TRUE((*g)->Release(kTimeout).ok());
  EXPECT_EQ(a.State(), "running");
  EXPECT_EQ(c.State(), "paused");
  EXPECT_THAT((*g)->Report()[1].view_detail, HasSubstr("paused by someone else"));
}

}  // namespace
}  // namespace ucode::orchestrator
