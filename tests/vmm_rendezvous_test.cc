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

std::unique_ptr<Coordinator> StartOrDie(std::vector<rendezvous::VmSpec> specs,
                                        absl::Duration deadman = absl::Seconds(5)) {
  CoordinatorOptions opts;
  opts.deadman = deadman;
  opts.log_dir = testing::TestLogDir();
  auto c = Coordinator::Start(std::move(specs), opts);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return nullptr;
  absl::Status running = (*c)->WaitGuestsRunning(absl::Seconds(10));
  EXPECT_TRUE(running.ok()) << running;
  return std::move(*c);
}

int CountState(const Coordinator& c, VcpuState st) {
  int n = 0;
  for (int i = 0; i < rendezvous::kMaxVms; ++i) {
    const auto& vm = c.area().vm[i];
    for (uint32_t j = 0; j < vm.vcpus; ++j) {
      n += vm.vcpu[j].state.load() == static_cast<uint32_t>(st);
    }
  }
  return n;
}

// Shuts down and checks that no ucode-vmm process is left.
void ShutdownAndCheck(std::unique_ptr<Coordinator> c) {
  std::vector<pid_t> pids = c->pids();
  EXPECT_TRUE(c->Shutdown().ok());
  c.reset();
  EXPECT_TRUE(testing::AllGoneWithin(pids, absl::Seconds(5)));
}

// Tests check behaviour, not speed: on 2 shared cores a vCPU thread may wait its turn.
constexpr absl::Duration kPatience = absl::Seconds(5);

uint64_t MsrOf(uint32_t rev) { return uint64_t{rev} << 32; }

// Waits until every vCPU of every VM (of a program that loops) ran at least one more
// iteration than in `before`. Guests are slow and share 2 cores, hence the patience.
::testing::AssertionResult AllMakeProgress(Coordinator& c, absl::Duration timeout) {
  auto before = c.ReadGuestViews();
  if (!before.ok()) return ::testing::AssertionFailure() << before.status();
  absl::Time end = absl::Now() + timeout;
  for (;;) {
    auto now = c.ReadGuestViews();
    if (!now.ok()) return ::testing::AssertionFailure() << now.status();
    std::string stuck;
    for (size_t i = 0; i < now->size(); ++i) {
      for (size_t j = 0; j < (*now)[i].vcpus.size(); ++j) {
        if ((*now)[i].vcpus[j].iterations <= (*before)[i].vcpus[j].iterations) {
          absl::StrAppend(&stuck, " ", (*now)[i].name, " vcpu ", j);
        }
      }
    }
    if (stuck.empty()) return ::testing::AssertionSuccess();
    if (absl::Now() > end) return ::testing::AssertionFailure() << "no progress:" << stuck;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

class ParkEveryProgramTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParkEveryProgramTest, ParksAndReleases) {
  SKIP_WITHOUT_KVM();
  auto c = StartOrDie(testing::Fleet(2, 2, GetParam()));
  ASSERT_NE(c, nullptr);
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(c->Park(kPatience).ok()) << GetParam();
    EXPECT_EQ(CountState(*c, VcpuState::kParked), 4);
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
    EXPECT_EQ(CountState(*c, VcpuState::kParked), 0);
  }
  if (GetParam() != "halt") {
    EXPECT_TRUE(AllMakeProgress(*c, absl::Seconds(10)));
  }
  ShutdownAndCheck(std::move(c));
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
  auto c = StartOrDie(specs);
  ASSERT_NE(c, nullptr);
  absl::Status parked = c->Park(absl::Milliseconds(50));
  ASSERT_FALSE(parked.ok());
  EXPECT_EQ(parked.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(parked.message()), HasSubstr("vm1 vcpu 1"));
  EXPECT_THAT(std::string(parked.message()), HasSubstr("5/6"));
  EXPECT_EQ(CountState(*c, VcpuState::kParked), 0);
  // Everybody runs again and still sees the old revision.
  EXPECT_TRUE(AllMakeProgress(*c, absl::Seconds(10)));
  auto after = c->ReadGuestViews();
  ASSERT_TRUE(after.ok());
  for (const VmResult& vm : *after) EXPECT_EQ(vm.revision_after, 1u) << vm.name;
  ShutdownAndCheck(std::move(c));
}

// A vCPU whose MSR 0x8B write does not stick: the release fails naming it, every vCPU
// is released (none left parked), the others run with the new view.
TEST(VmmRendezvousTest, LostViewWriteFailsNamingTheVcpuAndReleasesEveryone) {
  SKIP_WITHOUT_KVM();
  auto specs = testing::Fleet(2, 2, "spin", /*initial_revision=*/0x10);
  specs[1].stale_view_vcpu = 1;
  auto c = StartOrDie(specs);
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Park(kPatience).ok());
  absl::Status released = c->ReleaseWithRevision(0x11, kPatience);
  ASSERT_FALSE(released.ok());
  EXPECT_EQ(released.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(released.message()), HasSubstr("vm1 vcpu 1 read back 0x1000000000"));
  EXPECT_THAT(std::string(released.message()), HasSubstr("every vCPU released"));
  EXPECT_EQ(CountState(*c, VcpuState::kParked), 0);
  EXPECT_EQ(c->ViewNotSet(0, MsrOf(0x11)).size(), 0u);
  EXPECT_EQ(c->ViewNotSet(1, MsrOf(0x11)).size(), 1u);
  EXPECT_TRUE(AllMakeProgress(*c, absl::Seconds(10)));
  ShutdownAndCheck(std::move(c));
}

// Each guest keeps the largest gap of the window before the park (opened by
// OpenGapWindows) next to the gap that spans it, once it ran again after the park.
TEST(VmmRendezvousTest, GuestsMeasureTheBaselineGapBesideTheBlackout) {
  SKIP_WITHOUT_KVM();
  auto c = StartOrDie(testing::Fleet(2, 1, "spin"));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->OpenGapWindows().ok());
  ASSERT_TRUE(AllMakeProgress(*c, absl::Seconds(10)));  // gaps measured in the window
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
  ShutdownAndCheck(std::move(c));
}

TEST(VmmRendezvousTest, DeadmanReleasesWhenCoordinatorGoesSilent) {
  SKIP_WITHOUT_KVM();
  auto c = StartOrDie(testing::Fleet(2, 2, "spin"), /*deadman=*/absl::Milliseconds(200));
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->Park(kPatience).ok());
  // Say nothing more; each VMM must release its own vCPUs.
  absl::Time end = absl::Now() + absl::Seconds(10);
  while (CountState(*c, VcpuState::kParked) > 0 && absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(CountState(*c, VcpuState::kParked), 0);
  auto views = c->ReadGuestViews();
  ASSERT_TRUE(views.ok());
  for (const VmResult& vm : *views) {
    for (const auto& v : vm.vcpus) EXPECT_EQ(v.deadman_releases, 1u) << vm.name;
  }
  EXPECT_TRUE(AllMakeProgress(*c, absl::Seconds(10)));
  ShutdownAndCheck(std::move(c));
}

}  // namespace
}  // namespace ucode
