// The whole update operation on the emulated host with real KVM VMs (ucode-vmm processes):
// strict and fast modes, a VM that will not park, a staging failure, a cancel, the
// dead-man rules (refuse to park past it; views set after a dead-man release) and the
// guest-view sync.
#include <algorithm>
#include <memory>
#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"
#include "proto/json.h"
#include "tests/vmm_test_util.h"
#include "vmm/orchestrator/coordinator_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode {
namespace {

using orchestrator::Step;
using orchestrator::UpdateMode;
using orchestrator::UpdateReport;
using rendezvous::VcpuState;
using ::testing::HasSubstr;

constexpr uint32_t kOld = 0x2b000000;  // DemoHostConfig().revision
constexpr uint32_t kNew = 0x2b000001;

// 0x806f8, pf 0x87 (platform id 7), loads on kOld and after.
std::vector<uint8_t> Image(uint32_t revision = kNew) {
  auto image = microcode::GenerateImage({.revision = revision, .min_req_revision = kOld});
  EXPECT_TRUE(image.ok()) << image.status();
  return image.ok() ? *image : std::vector<uint8_t>{};
}

std::vector<rendezvous::VmSpec> Specs(int vms, int vcpus) {
  return testing::Fleet(vms, vcpus, "spin", kOld);
}

// Patient deadlines: 2 shared cores; tests check behaviour, never speed.
orchestrator::UpdateOptions Options(UpdateMode mode) {
  return {.mode = mode,
          .guests_running_timeout = absl::Seconds(20),
          .park_deadline = absl::Seconds(5),
          .step_deadline = absl::Seconds(5),
          .guest_view_timeout = absl::Seconds(20)};
}

// Every vCPU ends with the new revision and never saw it go backwards; in strict mode
// no vCPU read it before its own park ended (iterations order guest reads against the
// park without trusting clocks).
void ExpectGuestsSwitched(rendezvous::Coordinator& c, bool strict, uint32_t revision = kNew) {
  auto views = c.ReadGuestViews();
  ASSERT_TRUE(views.ok()) << views.status();
  const uint64_t msr = uint64_t{revision} << 32;
  for (const rendezvous::VmResult& vm : *views) {
    EXPECT_EQ(vm.revision_before, kOld) << vm.name;
    EXPECT_EQ(vm.revision_after, revision) << vm.name;
    for (const rendezvous::VcpuView& v : vm.vcpus) {
      EXPECT_EQ(v.rev_msr, msr) << vm.name << " vcpu " << v.index;
      EXPECT_EQ(v.backwards, 0u) << vm.name << " vcpu " << v.index;
      EXPECT_EQ(v.deadman_releases, 0u) << vm.name << " vcpu " << v.index;
      bool seen = false;
      for (const auto& ch : v.changes) {
        if (ch.rev_msr != msr) continue;
        seen = true;
        if (strict) {
          EXPECT_GE(ch.iteration, v.parked_iteration) << vm.name << " vcpu " << v.index;
        }
      }
      EXPECT_TRUE(seen) << vm.name << " vcpu " << v.index;
    }
  }
}

// One RunUpdate's steps (staging progress left out) and how many vCPUs were parked when
// the host activation was reported.
struct RecordedRun {
  UpdateReport report;
  std::vector<Step> steps;
  int parked_at_activation = -1;
};

// Every test runs real ucode-vmm guests (fleet_) around the emulated host (host_).
class OrchestratorTest : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_WITHOUT_KVM(); }

  void Start(std::vector<rendezvous::VmSpec> specs,
             platform::EmulatedHostConfig config = platform::DemoHostConfig(),
             absl::Duration deadman = absl::Seconds(5)) {
    fleet_.emplace(specs, deadman);
    auto host = platform::EmulatedPlatform::Create(config);
    ASSERT_TRUE(fleet_->ok() && host.ok()) << host.status();
    host_ = *std::move(host);
    group_.emplace(**fleet_, specs);
  }

  UpdateReport Run(const orchestrator::UpdateOptions& o,
                   const orchestrator::UpdateCallbacks& cb = {}, uint32_t revision = kNew) {
    orchestrator::GuestGroup* groups[] = {&*group_};
    return orchestrator::RunUpdate(*host_, Image(revision), groups, o, cb);
  }

  RecordedRun RunRecordingSteps(UpdateMode mode, uint32_t revision = kNew) {
    RecordedRun run;
    auto emit = [&](Step s, absl::string_view, const staging::StagingProgress* p) {
      if (p != nullptr) return;
      run.steps.push_back(s);
      if (s == v1::STEP_ACTIVATED) run.parked_at_activation = Count(VcpuState::kParked);
    };
    run.report = Run(Options(mode), {.emit = emit}, revision);
    return run;
  }

  void ExpectHostAt(uint32_t revision) {
    for (int cpu = 0; cpu < host_->config().cpu_count(); ++cpu) {
      EXPECT_EQ(platform::ReadRevision(*host_, cpu).value_or(0), revision) << "cpu " << cpu;
    }
  }
  int Count(VcpuState state) { return fleet_->Count(state); }
  rendezvous::Coordinator& coordinator() { return **fleet_; }

  std::optional<testing::TestFleet> fleet_;
  std::unique_ptr<platform::EmulatedPlatform> host_;
  std::optional<orchestrator::CoordinatorGuestGroup> group_;  // over fleet_
};

TEST_F(OrchestratorTest, StrictOperationUpdatesHostAndEveryGuest) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(3, 2)));
  RecordedRun run = RunRecordingSteps(v1::UPDATE_MODE_STRICT);
  const UpdateReport& r = run.report;
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(run.steps, (std::vector<Step>{v1::STEP_VALIDATED, v1::STEP_STAGED, v1::STEP_PARKED,
                                          v1::STEP_ACTIVATED, v1::STEP_GUEST_VIEWS_SET, v1::STEP_RELEASED,
                                          v1::STEP_VERIFIED, v1::STEP_AGENTS_NOTIFIED, v1::STEP_DONE}));
  EXPECT_EQ(run.parked_at_activation, 6);  // the host load ran with every vCPU held
  ExpectHostAt(kNew);
  ExpectGuestsSwitched(coordinator(), /*strict=*/true);
  EXPECT_EQ(Count(VcpuState::kRunning), 6);

  // The report's numbers agree with each other.
  EXPECT_TRUE(r.host_touched);
  EXPECT_EQ(r.old_revision, kOld);
  EXPECT_EQ(r.new_revision, kNew);
  ASSERT_TRUE(r.staging.has_value());
  EXPECT_EQ(r.staging->staged_count(), 2);
  ASSERT_TRUE(r.host.has_value());
  EXPECT_EQ(r.host->load.cpus.size(), 16u);
  EXPECT_EQ(r.host->load.updated, 8);
  EXPECT_EQ(r.host->load.siblings, 8);
  EXPECT_TRUE(r.host->verify.ok());
  ASSERT_EQ(r.vms.size(), 3u);
  EXPECT_EQ(r.total_vcpus(), 6);
  absl::Duration longest;
  for (const orchestrator::VmReport& vm : r.vms) {
    EXPECT_EQ(vm.view, orchestrator::ViewStatus::kVerified) << vm.name << ": " << vm.view_detail;
    EXPECT_EQ(vm.revision_before, kOld);
    EXPECT_EQ(vm.revision_after, kNew);
    EXPECT_EQ(vm.backwards, 0u);
    EXPECT_GT(vm.time_parked, absl::ZeroDuration());
    EXPECT_GE(vm.time_parked, r.host->load.activation_window) << vm.name;  // held across it
    // What each guest measured itself: the gap across the hold. (Its baseline gap needs an
    // iteration between the window's opening and the park, which a loaded host may not
    // schedule; vmm_rendezvous_test waits for one and checks it.)
    EXPECT_GT(vm.guest_blackout, absl::ZeroDuration()) << vm.name;
    longest = std::max(longest, vm.time_parked);
  }
  EXPECT_EQ(r.held, longest);
  EXPECT_EQ(r.overhead, r.held - r.host->load.activation_window);
  EXPECT_GE(r.overhead, absl::ZeroDuration());
  const ucode::v1::UpdateReport proto = orchestrator::ToProto(r);
  EXPECT_EQ(proto.mode(), ucode::v1::UPDATE_MODE_STRICT);
  EXPECT_TRUE(proto.ok());
  EXPECT_THAT(ProtoJson(proto), HasSubstr("\"baseline_max_gap_us\":"));
  EXPECT_THAT(orchestrator::ReportText(proto), HasSubstr("baseline max gap"));
  EXPECT_THAT(orchestrator::ReportText(proto), HasSubstr("verified"));

  // The next update in a row: again one activation with every vCPU held, and every guest
  // switches only after its own park, never backwards.
  RecordedRun next = RunRecordingSteps(v1::UPDATE_MODE_STRICT, kNew + 1);
  ASSERT_TRUE(next.report.status.ok()) << next.report.status;
  EXPECT_EQ(std::count(next.steps.begin(), next.steps.end(), v1::STEP_ACTIVATED), 1);
  EXPECT_EQ(next.parked_at_activation, 6);
  ExpectHostAt(kNew + 1);
  ExpectGuestsSwitched(coordinator(), /*strict=*/true, kNew + 1);
  EXPECT_EQ(Count(VcpuState::kRunning), 6);
}

// The host's rendezvous fails (a CPU never arrives, as in the kernel's wait_for_cpus()):
// no CPU takes the update, every vCPU is released and every guest keeps the old view.
TEST_F(OrchestratorTest, FailedActivationReleasesEveryVcpuWithTheOldView) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(2, 1)));
  orchestrator::UpdateOptions o = Options(v1::UPDATE_MODE_STRICT);
  o.late_load.faults.never_arrive = {1};
  o.late_load.arrival_timeout = absl::Milliseconds(50);
  UpdateReport r = Run(o);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAborted) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("host load"));
  ExpectHostAt(kOld);
  EXPECT_EQ(Count(VcpuState::kParked), 0);
  auto views = coordinator().ReadGuestViews();
  ASSERT_TRUE(views.ok()) << views.status();
  for (const rendezvous::VmResult& vm : *views) EXPECT_EQ(vm.revision_after, kOld) << vm.name;
}

TEST_F(OrchestratorTest, FastModeLoadsHostFirstThenSwitchesViews) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(2, 2)));
  RecordedRun run = RunRecordingSteps(v1::UPDATE_MODE_FAST);
  const UpdateReport& r = run.report;
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(run.parked_at_activation, 0);  // guests ran through the host activation
  auto activated = std::find(run.steps.begin(), run.steps.end(), v1::STEP_ACTIVATED);
  auto parked = std::find(run.steps.begin(), run.steps.end(), v1::STEP_PARKED);
  EXPECT_LT(activated, parked);
  ExpectHostAt(kNew);
  ExpectGuestsSwitched(coordinator(), /*strict=*/false);
  EXPECT_EQ(r.mode, v1::UPDATE_MODE_FAST);
  EXPECT_EQ(r.overhead, r.held);
  EXPECT_EQ(orchestrator::ToProto(r).mode(), ucode::v1::UPDATE_MODE_FAST);
}

TEST_F(OrchestratorTest, VmThatWillNotParkAbortsWithHostUntouched) {
  std::vector<rendezvous::VmSpec> specs = Specs(2, 2);
  specs[1].refuse_park_vcpu = 1;
  ASSERT_NO_FATAL_FAILURE(Start(specs));
  orchestrator::UpdateOptions o = Options(v1::UPDATE_MODE_STRICT);
  o.park_deadline = absl::Milliseconds(100);
  UpdateReport r = Run(o);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kAborted) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("vm1 vcpu 1"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("host untouched"));
  EXPECT_FALSE(r.host_touched);
  EXPECT_FALSE(r.host.has_value());
  ExpectHostAt(kOld);
  EXPECT_EQ(Count(VcpuState::kParked), 0);
  // Every vCPU runs again (the refusing one never stopped) and still reads the old revision.
  EXPECT_TRUE(fleet_->AllMakeProgress(absl::Seconds(10)));
  auto views = coordinator().ReadGuestViews();
  ASSERT_TRUE(views.ok());
  for (const rendezvous::VmResult& vm : *views) EXPECT_EQ(vm.revision_after, kOld) << vm.name;
  for (const orchestrator::VmReport& vm : r.vms) {
    EXPECT_EQ(vm.view, orchestrator::ViewStatus::kUnchanged) << vm.name;
  }
}

// A guest view that does not stick on one vCPU (its MSR 0x8B write is lost): the host is
// loaded, every vCPU is released, that VM's view is reported failed with the vCPU named,
// the operation fails, and the other VM is verified.
TEST_F(OrchestratorTest, LostGuestViewIsReportedAndEveryVcpuReleased) {
  std::vector<rendezvous::VmSpec> specs = Specs(2, 2);
  specs[1].stale_view_vcpu = 0;
  ASSERT_NO_FATAL_FAILURE(Start(specs));
  RecordedRun run = RunRecordingSteps(v1::UPDATE_MODE_STRICT);
  const UpdateReport& r = run.report;
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInternal) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("vm1: vcpu 0 read back"));
  EXPECT_TRUE(r.host_touched);
  EXPECT_NE(std::find(run.steps.begin(), run.steps.end(), v1::STEP_RELEASED), run.steps.end());
  EXPECT_EQ(std::find(run.steps.begin(), run.steps.end(), v1::STEP_VERIFIED), run.steps.end());
  EXPECT_EQ(Count(VcpuState::kParked), 0);
  ASSERT_EQ(r.vms.size(), 2u);
  EXPECT_EQ(r.vms[0].view, orchestrator::ViewStatus::kVerified) << r.vms[0].view_detail;
  EXPECT_EQ(r.vms[1].view, orchestrator::ViewStatus::kFailed);
  EXPECT_THAT(r.vms[1].view_detail, HasSubstr("vcpu 0 read back"));
  EXPECT_EQ(orchestrator::ToProto(r).vms(1).view(), "failed");
}

TEST_F(OrchestratorTest, StagingFailureStillLoadsUnstagedAndSaysSo) {
  ASSERT_NO_FATAL_FAILURE(
      Start(Specs(1, 2), {.mailbox = {.fault = platform::MailboxFault::kStatusError, .at = 1}}));
  UpdateReport r = Run(Options(v1::UPDATE_MODE_STRICT));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_TRUE(r.staging.has_value());
  EXPECT_EQ(r.staging->staged_count(), 0);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_THAT(r.notes.front(), HasSubstr("unstaged"));
  EXPECT_THAT(orchestrator::ReportText(orchestrator::ToProto(r)), HasSubstr("unstaged"));
  ExpectHostAt(kNew);
  ExpectGuestsSwitched(coordinator(), /*strict=*/true);
}

TEST_F(OrchestratorTest, CancelBeforeRendezvousLeavesEverythingAsItWas) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(1, 1)));
  auto cancel_at_park = [](Step s, absl::string_view) {
    return s == v1::STEP_PARKED ? absl::CancelledError("operator cancelled") : absl::OkStatus();
  };
  UpdateReport r = Run(Options(v1::UPDATE_MODE_STRICT), {.begin_step = cancel_at_park});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(r.host_touched);
  ExpectHostAt(kOld);
  EXPECT_EQ(Count(VcpuState::kParked), 0);
}

// `ucodectl demo --host activation_fixed_us=3000000` used to park VMs whose dead-man is
// 2 s: the model itself predicts they would release themselves mid-activation.
TEST_F(OrchestratorTest, RefusesToParkWhenPredictedActivationOutlastsTheDeadman) {
  ASSERT_NO_FATAL_FAILURE(
      Start(Specs(1, 1), {.activation = {.fixed = absl::Seconds(3)}}, absl::Seconds(2)));
  std::vector<Step> begun;
  auto record = [&](Step s, absl::string_view) {
    begun.push_back(s);
    return absl::OkStatus();
  };
  UpdateReport r = Run(Options(v1::UPDATE_MODE_STRICT), {.begin_step = record});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("predicted activation 3"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("dead-man deadline 2s"));
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("vm0"));
  EXPECT_FALSE(r.host_touched);
  EXPECT_EQ(std::count(begun.begin(), begun.end(), v1::STEP_PARKED), 0);  // never journaled
  ExpectHostAt(kOld);
  auto views = coordinator().ReadGuestViews();
  ASSERT_TRUE(views.ok());
  EXPECT_EQ((*views)[0].vcpus[0].deadman_releases, 0u);
}

// The coordinator stalls (here: in the ACTIVATED callback) until every VM's dead-man has
// released it. The host runs the new revision; the guest views are set anyway, in a
// second park, and the report says it was not atomic.
TEST_F(OrchestratorTest, ViewsSetAfterADeadmanReleaseAreReportedNonAtomic) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(2, 1), platform::DemoHostConfig(), absl::Milliseconds(300)));
  auto stall_after_activation = [&](Step s, absl::string_view, const staging::StagingProgress*) {
    if (s != v1::STEP_ACTIVATED) return;
    // No clock: wait for the VMs' own dead-man to let every vCPU go.
    while (Count(VcpuState::kParked) > 0) absl::SleepFor(absl::Milliseconds(5));
  };
  orchestrator::UpdateOptions o = Options(v1::UPDATE_MODE_STRICT);
  o.step_deadline = absl::Seconds(2);  // the first view step waits this long for acks
  UpdateReport r = Run(o, {.emit = stall_after_activation});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.views_atomic);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_THAT(r.notes.back(), HasSubstr("NON-ATOMICALLY"));
  EXPECT_FALSE(orchestrator::ToProto(r).rendezvous().guest_views_atomic());
  for (const orchestrator::VmReport& vm : r.vms) {  // the second park's outcome, verified
    EXPECT_EQ(vm.view, orchestrator::ViewStatus::kVerified) << vm.name << ": " << vm.view_detail;
  }
  ExpectHostAt(kNew);
  auto views = coordinator().ReadGuestViews();
  ASSERT_TRUE(views.ok());
  for (const rendezvous::VmResult& vm : *views) {
    EXPECT_EQ(vm.revision_after, kNew) << vm.name;
    EXPECT_GT(vm.vcpus[0].deadman_releases, 0u) << vm.name;
    EXPECT_EQ(vm.vcpus[0].backwards, 0u) << vm.name;
  }
  EXPECT_EQ(Count(VcpuState::kParked), 0);
}

// Guests whose view lags a host that already runs the image: applying the same image
// again used to be refused as "not newer" forever. It now only sets the views; the
// explicit SyncGuestViews does the same without an image.
TEST_F(OrchestratorTest, HostAlreadyAtTheImageRevisionSyncsLaggingGuestViews) {
  ASSERT_NO_FATAL_FAILURE(Start(Specs(1, 2), {.revision = kNew}));  // the guests read kOld
  UpdateReport r = Run(Options(v1::UPDATE_MODE_STRICT));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_FALSE(r.host_touched);
  EXPECT_EQ(r.new_revision, kNew);
  ASSERT_FALSE(r.notes.empty());
  EXPECT_THAT(r.notes.back(), HasSubstr("only the guest views were set"));
  ASSERT_EQ(r.vms.size(), 1u);
  EXPECT_EQ(r.vms[0].view, orchestrator::ViewStatus::kVerified) << r.vms[0].view_detail;
  auto views = coordinator().ReadGuestViews();
  ASSERT_TRUE(views.ok());
  EXPECT_EQ((*views)[0].revision_after, kNew);

  orchestrator::GuestGroup* groups[] = {&*group_};
  UpdateReport again =
      orchestrator::SyncGuestViews(*host_, groups, Options(v1::UPDATE_MODE_STRICT));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.new_revision, kNew);
}

}  // namespace
}  // namespace ucode
