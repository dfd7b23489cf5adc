#include "host/late_load/late_load.h"

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"

namespace ucode::late_load {
namespace {

using platform::EmulatedHostConfig;
using platform::EmulatedPlatform;

std::vector<uint8_t> Image() {
  auto image = microcode::GenerateImage({});  // 0x806f8 pf 0x87 rev 0x2b000001
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

std::unique_ptr<EmulatedPlatform> Host(EmulatedHostConfig config = {}) {
  config.activation.fixed = absl::Microseconds(200);
  auto p = EmulatedPlatform::Create(config);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

platform::ActivationOptions Fast(platform::RendezvousFaults faults = {}) {
  return {.arrival_timeout = absl::Milliseconds(500),
          .sibling_timeout = absl::Milliseconds(500),
          .faults = std::move(faults)};
}

// Both phases in a row, as a host-only load does.
absl::StatusOr<LateLoadResult> Load(platform::Platform& host, const std::vector<uint8_t>& image,
                                    const platform::ActivationOptions& options = Fast()) {
  absl::StatusOr<PreparedLateLoad> prepared = PrepareLateLoad(host, image, options);
  if (!prepared.ok()) return prepared.status();
  return prepared->Activate();
}

// Every one of the 16 CPUs runs `revision`.
void ExpectEveryCpuAt(platform::Platform& host, uint32_t revision) {
  for (int cpu = 0; cpu < 16; ++cpu) EXPECT_EQ(*platform::ReadRevision(host, cpu), revision) << cpu;
}

TEST(LateLoad, UpdatesEveryCoreAndCountsLikeTheKernel) {
  auto host = Host({.offline_cpus = {9}});  // sibling of cpu 1
  const auto image = Image();
  auto prepared = PrepareLateLoad(*host, image, Fast());
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->old_revision(), 0x2b000000u);
  EXPECT_EQ(*platform::ReadRevision(*host, 0), 0x2b000000u);  // prepared, not activated
  auto r = std::make_optional(prepared->Activate());
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_EQ(r->summary, "updated on 8 primary CPUs with 7 siblings");
  EXPECT_EQ(r->updated, 8);
  EXPECT_EQ(r->siblings, 7);
  EXPECT_EQ(r->offline, 1);
  EXPECT_EQ(r->failed + r->timed_out, 0);
  EXPECT_EQ(r->old_revision, 0x2b000000u);
  EXPECT_EQ(r->new_revision, 0x2b000001u);
  EXPECT_EQ(r->cpus[9].outcome, CpuOutcome::kOffline);
  for (int cpu = 0; cpu < 16; ++cpu) {
    if (cpu != 9) {
      EXPECT_EQ(*platform::ReadRevision(*host, cpu), 0x2b000001u) << cpu;
    }
  }
  // The primaries slept the modelled time inside the window.
  EXPECT_EQ(r->modelled_critical_path, host->config().activation.Cost(image.size(), false));
  EXPECT_GE(r->activation_window, r->modelled_critical_path);
}

// What the orchestrator does when a VM will not park: the prepared load is dropped.
TEST(LateLoad, DroppingAPreparedLoadLeavesTheHostUntouched) {
  auto host = Host();
  const auto image = Image();
  {
    auto prepared = PrepareLateLoad(*host, image, Fast());
    ASSERT_TRUE(prepared.ok()) << prepared.status();
  }
  ExpectEveryCpuAt(*host, 0x2b000000u);
  auto r = Load(*host, image);  // the stopper threads were given back
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
}

TEST(LateLoad, CpuThatNeverArrivesTimesEveryoneOut) {
  auto host = Host();
  auto r = Load(*host, Image(), Fast({.never_arrive = {3}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(r->summary, "update failed: 1 CPUs failed 15 CPUs timed out");
  EXPECT_EQ(r->cpus[3].outcome, CpuOutcome::kFailed);
  EXPECT_EQ(r->cpus[0].outcome, CpuOutcome::kTimedOut);
  ExpectEveryCpuAt(*host, 0x2b000000u);
}

TEST(LateLoad, FailingPrimaryFailsItsSiblingOnly) {
  auto host = Host({.failing_cpus = {2}});
  auto r = Load(*host, Image());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(r->summary,
            "updated on 7 primary CPUs with 7 siblings; load incomplete: 2 CPUs timed out or failed");
  EXPECT_EQ(r->cpus[2].outcome, CpuOutcome::kFailed);
  EXPECT_NE(r->cpus[2].detail.find("injected"), std::string::npos);
  EXPECT_EQ(r->cpus[10].outcome, CpuOutcome::kFailed);
  EXPECT_EQ(r->cpus[10].detail, "primary cpu 2 failed; not applied");
  EXPECT_EQ(*platform::ReadRevision(*host, 10), 0x2b000000u);
}

TEST(LateLoad, SiblingOfAHungPrimaryTimesOut) {
  auto host = Host();
  auto r = Load(*host, Image(), Fast({.primary_hangs = {5}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->updated, 7);
  EXPECT_EQ(r->siblings, 7);
  EXPECT_EQ(r->timed_out, 1);
  EXPECT_EQ(r->failed, 1);
  EXPECT_EQ(r->cpus[13].outcome, CpuOutcome::kTimedOut);
  EXPECT_EQ(r->cpus[13].detail,
            "timed out after 500ms waiting for primary cpu 5 (the kernel panics here)");
}

TEST(LateLoad, OfflinePrimaryRefusesLikeEbusy) {
  auto host = Host({.offline_cpus = {2}});
  auto r = Load(*host, Image());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "cpu 2 (a core's primary thread) is offline: loading aborted (kernel: -EBUSY)");
}

TEST(LateLoad, NotNewerImageChangesNothingLikeUcodeOk) {
  auto host = Host({.revision = 0x2b000005});
  auto r = Load(*host, Image());
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_EQ(r->summary, "nothing to update");
  EXPECT_EQ(r->cpus[0].outcome, CpuOutcome::kAlreadyCurrent);
  EXPECT_EQ(*platform::ReadRevision(*host, 0), 0x2b000005u);
}

// Kernel __apply_microcode(): a core already at the revision answers UCODE_OK, so a retry
// after a partial load completes instead of counting the updated cores as failed.
TEST(LateLoad, RetryAfterAPartialLoadCompletes) {
  auto host = Host();
  const auto image = Image();
  auto first = Load(*host, image, Fast({.primary_hangs = {5}}));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->updated, 7);
  EXPECT_EQ(*platform::ReadRevision(*host, 5), 0x2b000000u);

  auto retry = Load(*host, image);
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->status.ok()) << retry->status;
  EXPECT_EQ(retry->summary, "updated on 1 primary CPUs with 15 siblings");
  EXPECT_EQ(retry->cpus[0].outcome, CpuOutcome::kAlreadyCurrent);
  EXPECT_EQ(retry->cpus[5].outcome, CpuOutcome::kUpdated);
  EXPECT_EQ(retry->cpus[13].outcome, CpuOutcome::kSibling);
  ExpectEveryCpuAt(*host, 0x2b000001u);
}

// Kernel wait_for_cpus(): CPUs that give up take their arrival back, so one arriving
// after that times out as well instead of applying alone.
TEST(LateLoad, LateArrivalTimesOutInsteadOfApplying) {
  auto host = Host();
  auto r = Load(*host, Image(), Fast({.late_arrival = {3}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->summary, "update failed: 0 CPUs failed 16 CPUs timed out");
  EXPECT_EQ(r->cpus[3].outcome, CpuOutcome::kTimedOut);
  ExpectEveryCpuAt(*host, 0x2b000000u);
}

// Kernel load_primary(): CPU 0 kicks the offline siblings before the arrival wait, so an
// arrival timeout is reported as such, not as silent offline siblings.
TEST(LateLoad, ArrivalTimeoutDoesNotBlameOfflineSiblings) {
  auto host = Host({.offline_cpus = {9}});
  auto r = Load(*host, Image(), Fast({.never_arrive = {3}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->summary, "update failed: 1 CPUs failed 14 CPUs timed out");
  EXPECT_EQ(r->cpus[9].outcome, CpuOutcome::kOffline);
}

TEST(LateLoad, SilentOfflineSiblingStopsCpu0FromLoading) {
  auto host = Host({.offline_cpus = {9, 12}});
  auto r = Load(*host, Image(), Fast({.offline_silent = {12}}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(r->summary, "1 offline siblings did not respond");
  EXPECT_EQ(r->cpus[0].outcome, CpuOutcome::kFailed);
  EXPECT_EQ(r->cpus[0].detail,
            "skipped the load: 1 of 2 offline siblings did not answer the NMI kick within 500ms");
  EXPECT_EQ(r->cpus[9].outcome, CpuOutcome::kOffline);
  EXPECT_EQ(r->cpus[12].outcome, CpuOutcome::kFailed);
  EXPECT_EQ(r->cpus[1].outcome, CpuOutcome::kTimedOut);
  for (int cpu : {0, 1, 8}) EXPECT_EQ(*platform::ReadRevision(*host, cpu), 0x2b000000u);
}

std::set<std::string> Tasks() {
  std::set<std::string> tids;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    tids.insert(e.path().filename().string());
  }
  return tids;
}

// The stopper threads exist once the load is prepared (before anything is held) and are
// the same threads on every load: no thread is created or destroyed while vCPUs are held.
TEST(LateLoad, NoThreadIsCreatedWhileHeldAndStoppersAreKept) {
  auto host = Host();
  std::vector<std::set<std::string>> before, after;
  for (uint32_t rev = 0x2b000001; rev <= 0x2b000003; ++rev) {
    auto image = microcode::GenerateImage({.revision = rev});
    ASSERT_TRUE(image.ok());
    auto prepared = PrepareLateLoad(*host, *image, Fast());
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    before.push_back(Tasks());
    auto r = std::make_optional(prepared->Activate());
    after.push_back(Tasks());
    EXPECT_TRUE(r->status.ok()) << r->status;
    EXPECT_GT(r->activation_window, absl::ZeroDuration());
  }
  ASSERT_EQ(before.size(), 3u);
  ASSERT_EQ(after.size(), 3u);
  EXPECT_GE(before[0].size(), 17u);  // this thread and 16 stoppers
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(before[i], after[i]) << "load " << i;
    EXPECT_EQ(before[i], before[0]) << "load " << i;
  }
}

}  // namespace
}  // namespace ucode::late_load
