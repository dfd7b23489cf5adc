// Crash safety of ucoded's journal: a ucoded subprocess (fake runner, paused at a step) is
// killed with SIGKILL mid-operation; the restarted daemon reports the operation
// INTERRUPTED with the step it had begun and the last one it finished, after asking the
// runner to confirm every guest runs. SIGTERM, by contrast, ends the operation cleanly.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon_e2e/daemon_test_util.h"

namespace ucode::daemon_e2e {
namespace {

using ::testing::HasSubstr;

class DaemonCrashTest : public ::testing::Test {
 protected:
  std::unique_ptr<Subprocess> StartUcoded(const std::string& pause_at) {
    std::vector<std::string> argv = {Runfile("vmm/daemon/ucoded"),
                                     "--runner=fake",
                                     "--socket=" + socket_,
                                     "--journal=" + dir_.File("journal.sqlite"),
                                     "--allow_uids=" + std::to_string(getuid())};
    if (!pause_at.empty()) argv.push_back("--fake_pause_at=" + pause_at);
    auto p = std::make_unique<Subprocess>(argv, dir_.File("ucoded.log"));
    EXPECT_TRUE(WaitUntilServing(socket_, absl::Seconds(60))) << ReadFile(dir_.File("ucoded.log"));
    stub_ = UnixStub(socket_);
    return p;
  }
  // Starts an apply and reads its watch stream until `step` has been reported.
  std::string ApplyUntil(v1::Step step) {
    v1::Operation op;
    grpc::Status s = StartApply(*stub_, TestImage(), &op);
    EXPECT_TRUE(s.ok()) << s.error_message();
    grpc::ClientContext wctx;
    v1::WatchOperationRequest wreq;
    wreq.set_name(op.name());
    auto reader = stub_->WatchOperation(&wctx, wreq);
    v1::OperationEvent e;
    while (reader->Read(&e)) {
      if (e.step() == step) break;
    }
    EXPECT_EQ(e.step(), step);
    wctx.TryCancel();
    reader->Finish();
    return op.name();
  }
  v1::Operation Get(const std::string& name) {
    grpc::Status s;
    v1::Operation op = GetOperation(*stub_, name, &s);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return op;
  }

  ScratchDir dir_;
  std::string socket_ = dir_.File("ucoded.sock");
  std::unique_ptr<v1::UcodeService::Stub> stub_;
};

TEST_F(DaemonCrashTest, KillDuringRendezvousIsReportedInterrupted) {
  std::string name;
  {
    auto ucoded = StartUcoded("STEP_ACTIVATED");
    name = ApplyUntil(v1::STEP_PARKED);
    int status = ucoded->KillAndWait(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  auto ucoded = StartUcoded("");
  v1::Operation op = Get(name);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_TRUE(op.done());
  // The rendezvous was journaled as begun; its inner steps are not fsynced while vCPUs are
  // held, so the last finished step on disk is STEP_STAGED.
  EXPECT_EQ(op.interrupted_step(), v1::STEP_PARKED);
  EXPECT_EQ(op.last_step(), v1::STEP_STAGED);
  EXPECT_EQ(op.error().code(), static_cast<int>(grpc::ABORTED));
  EXPECT_THAT(op.error().message(), HasSubstr("STEP_PARKED"));
  EXPECT_TRUE(op.report().interrupted().guests_confirmed_running());
  EXPECT_THAT(ReadFile(dir_.File("ucoded.log")), HasSubstr("event=operation_interrupted"));
  // The host slot is free again.
  v1::Operation next;
  ASSERT_TRUE(StartApply(*stub_, TestImage(), &next).ok());
  EXPECT_EQ(WatchToEnd(*stub_, next.name()).state(), v1::OPERATION_STATE_SUCCEEDED);
}

TEST_F(DaemonCrashTest, KillDuringStagingIsReportedInterrupted) {
  std::string name;
  {
    auto ucoded = StartUcoded("STEP_STAGED");
    name = ApplyUntil(v1::STEP_STAGING);
    ucoded->KillAndWait(SIGKILL);
  }
  auto ucoded = StartUcoded("");
  v1::Operation op = Get(name);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_EQ(op.interrupted_step(), v1::STEP_STAGING);
  EXPECT_EQ(op.last_step(), v1::STEP_VALIDATED);
}

TEST_F(DaemonCrashTest, SigtermCancelsBeforeRendezvousAndExitsCleanly) {
  std::string name;
  {
    auto ucoded = StartUcoded("STEP_STAGED");
    name = ApplyUntil(v1::STEP_STAGING);
    kill(ucoded->pid(), SIGTERM);
    EXPECT_EQ(ucoded->Wait(), 0) << ReadFile(dir_.File("ucoded.log"));
  }
  std::fprintf(stderr, "%s", ReadFile(dir_.File("ucoded.log")).c_str());
  EXPECT_THAT(ReadFile(dir_.File("ucoded.log")), HasSubstr("event=ucoded_stopped"));
  auto ucoded = StartUcoded("");
  v1::Operation op = Get(name);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_CANCELLED);
  EXPECT_EQ(op.interrupted_step(), v1::STEP_UNSPECIFIED);
}

}  // namespace
}  // namespace ucode::daemon_e2e
