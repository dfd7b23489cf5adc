// Cross-process rendezvous on real KVM: ucode-vmm processes driven by the coordinator's
// own steps (park, release, release with the view, dead-man). The update sequence around
// them is orchestrator::RunUpdate's, tested in tests/orchestrator_test.cc.
#include <algorithm>
#include <atomic>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/vmm_test_util.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode {
namespace {

using rendezvous::Coordinator;
using rendezvous::CoordinatorOptions;
using rendezvous::VcpuState;
using rendezvous::VmResult;
using ::testing::HasSubstr;

// A started fleet whose guests run.
::testing::AssertionResult Running(testing::TestFleet& fleet) {
  if (!fleet.ok()) return ::testing::AssertionFailure() << "fleet did not start";
  absl::Status running = fleet->WaitGuestsRunning(absl::Seconds(10));
  if (!running.ok()) return ::testing::AssertionFailure() << running;
  return ::testing::AssertionSuccess();
}

// Tests check behaviour, not speed: on 2 shared cores a vCPU thread may wait its turn.
constexpr absl::Duration kPatience = absl::Seconds(5);

uint64_t MsrOf(uint32_t rev) { return uint64_t{rev} << 32; }

class ParkEveryProgramTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParkEveryProgramTest, ParksAndReleases) {
  SKIP_WITHOUT_KVM();
  testing::TestFleet c(testing::Fleet(2, 2, GetParam()));
  ASSERT_TRUE(Running(c));
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(c->Park(kPatience).ok()) << GetParam();
    EXPECT_EQ(c.Count(VcpuState::kParked), 4);
    auto parked = c->ReadGuestViews();
    ASSERT_TRUE(parked.ok());
    absl::SleepFor(absl::Milliseconds(20));
    auto still = c->ReadGuestViews();
    ASSERT_TRUE(still.ok());
    for (size_t i = 0; i < parked->size(); ++i) {
      for (size_t j = 0; j < (*parked)[i].vcpus.size(); ++j) {
        // Parked means no guest instruction runs.
        EXPECT_EQ((*parked)[i].vcpus[j].iterations, (*still)[i].vcpus[j].iterations);
      }
    }
    ASSERT_TRUE(c->Release(kPatience).ok());
    EXPECT_EQ(c.Count(VcpuState::kParked), 0);
  }
  if (GetParam() != "halt") {
    EXPECT_TRUE(c.AllMakeProgress(absl::Seconds(10)));
  }
}

INSTANTIATE_TEST_SUITE_P(Programs, ParkEveryProgramTest,
                         ::testing::Values("spin", "cli-spin", "halt", "exit-storm"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// Park() is all or nothing: one vCPU that will not park fails it naming that vCPU and
// the count, and every other vCPU is released with the old view. (The whole operation
// around it: OrchestratorTest.VmThatWillNotParkAbortsWithHostUntouched.)
TEST(VmmRendezvousTest, VmThatWillNotParkFailsTheParkAndReleasesEveryone) {
  SKIP_WITHOUT_KVM();
  auto specs = testing::Fleet(3, 2, "spin");
  specs[1].refuse_park_vcpu = 1;
  testing::TestFleet c(specs);
  ASSERT_TRUE(Running(c));
  absl::Status parked = c->Park(absl::Milliseconds(50));
  ASSERT_FALSE(parked.ok());
  EXPECT_EQ(parked.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(parked.message()), HasSubstr("vm1 vcpu 1"));
  EXPECT_THAT(std::string(parked.message()), HasSubstr("5/6"));
  EXPECT_EQ(c.Count(VcpuState::kParked), 0);
  // Everybody runs again and still sees the old revision.
  EXPECT_TRUE(c.AllMakeProgress(absl::Seconds(10)));
  auto after = c->ReadGuestViews();
  ASSERT_TRUE(after.ok());
  for (const VmResult& vm : *after) EXPECT_EQ(vm.revision_after, 1u) << vm.name;
}

// A vCPU whose MSR 0x8B write does not stick: the release fails naming it, every vCPU
// is released (none left parked), the others run with the new view.
TEST(VmmRendezvousTest, LostViewWriteFailsNamingTheVcpuAndReleasesEveryone) {
  SKIP_WITHOUT_KVM();
  auto specs = testing::Fleet(2, 2, "spin", /*initial_revision=*/0x10);
  specs[1].stale_view_vcpu = 1;
  testing::TestFleet c(specs);
  ASSERT_TRUE(Running(c));
  ASSERT_TRUE(c->Park(kPatience).ok());
  absl::Status released = c->ReleaseWithRevision(0x11, kPatience);
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(released.message()), HasSubstr("vm1 vcpu 1 read back 0x1000000000"));
  EXPECT_THAT(std::string(released.message()), HasSubstr("every vCPU released"));
  EXPECT_EQ(c.Count(VcpuState::kParked), 0);
  EXPECT_EQ(c->ViewNotSet(0, MsrOf(0x11)).size(), 0u);
  EXPECT_EQ(c->ViewNotSet(1, MsrOf(0x11)).size(), 1u);
  EXPECT_TRUE(c.AllMakeProgress(absl::Seconds(10)));
}

// Each guest keeps the largest gap of the window before the park (opened by
// OpenGapWindows) next to the gap that spans it, once it ran again after the park.
TEST(VmmRendezvousTest, GuestsMeasureTheBaselineGapBesideTheBlackout) {
  SKIP_WITHOUT_KVM();
  testing::TestFleet c(testing::Fleet(2, 1, "spin"));
  ASSERT_TRUE(Running(c));
  ASSERT_TRUE(c->OpenGapWindows().ok());
  ASSERT_TRUE(c.AllMakeProgress(absl::Seconds(10)));  // gaps measured in the window
  ASSERT_TRUE(c->Park(kPatience).ok());
  ASSERT_TRUE(c->ReleaseWithRevision(2, kPatience).ok());
  ASSERT_TRUE(c->WaitGuestsRanAfterPark(absl::Seconds(10)).ok());
  auto views = c->ReadGuestViews();
  ASSERT_TRUE(views.ok()) << views.status();
  for (const VmResult& vm : *views) {
    EXPECT_GT(vm.baseline_max_gap, absl::ZeroDuration()) << vm.name;
    EXPECT_GT(vm.guest_blackout, absl::ZeroDuration()) << vm.name;
    for (const auto& v : vm.vcpus) {
      EXPECT_GT(v.iterations, v.parked_iteration + 1) << vm.name;
      EXPECT_LE(v.baseline_gap, vm.baseline_max_gap);
    }
  }
}

TEST(VmmRendezvousTest, DeadmanReleasesWhenCoordinatorGoesSilent) {
  SKIP_WITHOUT_KVM();
  testing::TestFleet c(testing::Fleet(2, 2, "spin"), /*deadman=*/absl::Milliseconds(200));
  ASSERT_TRUE(Running(c));
  ASSERT_TRUE(c->Park(kPatience).ok());
  // Say nothing more; each VMM must release its own vCPUs.
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (c.Count(VcpuState::kParked) > 0 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(c.Count(VcpuState::kParked), 0);
  auto views = c->ReadGuestViews();
  ASSERT_TRUE(views.ok());
  for (const VmResult& vm : *views) {
    for (const auto& v : vm.vcpus) EXPECT_EQ(v.deadman_releases, 1u) << vm.name;
  }
  EXPECT_TRUE(c.AllMakeProgress(absl::Seconds(10)));
}

}  // namespace
}  // namespace ucode
