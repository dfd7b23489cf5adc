// The managed ucode-vmm fleet on a real ucoded, against what happens to it between
// operations, and the guest-view sync:
//  - SIGSTOP: ListGuests says "stopped" (it used to say "running"), an apply is refused
//    naming it with nothing parked, and after SIGCONT the next apply succeeds;
//  - kill -9: the VMM is reaped (no zombie), restarted at the host's revision, listed
//    running again, recorded in fleet.txt, and the next applies succeed (every later apply
//    used to fail with "sendmsg ... Broken pipe").
#include <signal.h>
#include <sys/prctl.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon_e2e/ucoded_process.h"

namespace ucode::daemon_e2e {
namespace {

using ::testing::HasSubstr;

int TaskCount(pid_t pid) {
  std::error_code ec;
  int n = 0;
  for (const auto& t : std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    (void)t;
    ++n;
  }
  return n;
}

// Waits until /proc shows `pid` in `state` ('T' stopped; 'Z' dead, every thread gone, not
// yet reaped): signals are delivered asynchronously, and a killed process's vCPU threads
// leave KVM_RUN after its main thread is already a zombie.
bool WaitState(pid_t pid, char state) {
  for (int i = 0; i < 5000; ++i) {
    std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    size_t rp = stat.rfind(')');
    if (rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == state &&
        (state != 'Z' || TaskCount(pid) == 1)) {
      return true;
    }
    usleep(1000);
  }
  return false;
}

// Each test: a ucoded with two one-vCPU VMs.
class DaemonFleetRepair : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_KVM();
    ucoded_ = std::make_unique<UcodedProcess>(dir_, "2x1");
    ASSERT_TRUE(ucoded_->serving()) << ucoded_->log();
  }
  std::vector<FleetEntry> Fleet() { return ReadFleet(dir_.File("vmm/fleet.txt")); }
  std::map<std::string, std::string> GuestStates() {
    grpc::ClientContext ctx;
    v1::ListGuestsResponse guests;
    std::map<std::string, std::string> out;
    if (!ucoded_->stub().ListGuests(&ctx, v1::ListGuestsRequest(), &guests).ok()) return out;
    for (const v1::Guest& g : guests.guests()) out[g.name()] = g.state();
    return out;
  }
  // An apply of `image` (default: the next one) to its end.
  v1::Operation ApplyAndWait(std::string image = "") {
    v1::Operation op;
    grpc::Status start = StartApply(stub(), image.empty() ? NextImage(stub()) : image, &op);
    EXPECT_TRUE(start.ok()) << start.error_message();
    return start.ok() ? WatchToEnd(stub(), op.name()) : op;
  }
  v1::UcodeService::Stub& stub() { return ucoded_->stub(); }

  ScratchDir dir_;
  std::unique_ptr<UcodedProcess> ucoded_;
};

TEST_F(DaemonFleetRepair, StoppedVmIsListedAndRefusedByName) {
  std::vector<FleetEntry> fleet = Fleet();
  ASSERT_EQ(fleet.size(), 2u);

  ASSERT_EQ(kill(fleet[1].pid, SIGSTOP), 0);
  ASSERT_TRUE(WaitState(fleet[1].pid, 'T'));
  std::map<std::string, std::string> states = GuestStates();
  EXPECT_EQ(states["vm0"], "running");
  EXPECT_EQ(states["vm1"], "stopped");
  v1::Operation done = ApplyAndWait();
  EXPECT_EQ(done.state(), v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(done.error().message(), HasSubstr("vm1"));
  EXPECT_THAT(done.error().message(), HasSubstr("stopped"));
  EXPECT_EQ(done.error().code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));

  ASSERT_EQ(kill(fleet[1].pid, SIGCONT), 0);
  done = ApplyAndWait();
  EXPECT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  EXPECT_EQ(GuestStates()["vm1"], "running");
}

TEST_F(DaemonFleetRepair, KilledVmIsReapedRestartedAndLaterAppliesSucceed) {
  std::vector<FleetEntry> before = Fleet();
  ASSERT_EQ(before.size(), 2u);

  // Killed, then an apply straight away: the operation restarts it first and says so.
  ASSERT_EQ(kill(before[1].pid, SIGKILL), 0);
  ASSERT_TRUE(WaitState(before[1].pid, 'Z'));  // dead, and ucoded has not reaped it yet
  v1::Operation done = ApplyAndWait();
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  const v1::UpdateReport& report = done.report();
  ASSERT_FALSE(report.notes().empty()) << report.DebugString();
  EXPECT_THAT(report.notes(0), HasSubstr("vm1"));
  EXPECT_THAT(report.notes(0), HasSubstr("killed by signal 9"));
  const uint32_t new_rev = report.image().new_revision();
  for (const v1::VmReport& vm : report.vms()) {
    EXPECT_EQ(vm.revision_after(), new_rev) << vm.DebugString();
    EXPECT_EQ(vm.view(), "verified") << vm.DebugString();
  }
  std::vector<FleetEntry> after = Fleet();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].pid, before[0].pid);
  EXPECT_NE(after[1].pid, before[1].pid);
  EXPECT_NE(after[1].log, before[1].log);
  // Reaped: not even a zombie is left of the killed VMM.
  EXPECT_NE(kill(before[1].pid, 0), 0);

  // Killed while idle: ListGuests reaps and restarts it, and lists it running.
  ASSERT_EQ(kill(after[0].pid, SIGKILL), 0);
  ASSERT_TRUE(WaitState(after[0].pid, 'Z'));
  std::map<std::string, std::string> states = GuestStates();
  EXPECT_EQ(states["vm0"], "running");
  EXPECT_EQ(states["vm1"], "running");
  EXPECT_NE(Fleet()[0].pid, after[0].pid);
  done = ApplyAndWait();
  EXPECT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
}

// The same image applied again once the host runs it (e.g. after a dead-man released the
// VMs before their view was set) used to be refused as "not newer" for good: it now only
// sets the guest views. SyncGuestViews does it without an image.
TEST_F(DaemonFleetRepair, ReapplyAndSyncGuestViewsOnceTheHostRunsTheImage) {
  const std::string image = NextImage(stub());
  for (int round = 0; round < 2; ++round) {
    const v1::Operation done = ApplyAndWait(image);
    ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << round << ": " << done.error().message();
    const v1::UpdateReport& report = done.report();
    EXPECT_EQ(report.host_touched(), round == 0) << report.DebugString();
    if (round == 1) {
      ASSERT_FALSE(report.notes().empty());
      EXPECT_THAT(*report.notes().rbegin(), HasSubstr("only the guest views"));
    }
  }
  grpc::ClientContext ctx;
  v1::Operation op;
  ASSERT_TRUE(stub().SyncGuestViews(&ctx, v1::SyncGuestViewsRequest(), &op).ok());
  EXPECT_EQ(op.kind(), "sync");
  const v1::Operation done = WatchToEnd(stub(), op.name());
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  for (const v1::VmReport& vm : done.report().vms()) {
    EXPECT_EQ(vm.view(), "verified") << vm.DebugString();
  }
}

}  // namespace
}  // namespace ucode::daemon_e2e
