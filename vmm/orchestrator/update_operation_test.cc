// The update with no VMs (the host-only load of `ucodectl load` and the rehearsal) and
// StageUpdate, on the emulated host. Updates with VMs: tests/orchestrator_test.cc.
#include "vmm/orchestrator/update_operation.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/late_load/late_load.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"

namespace ucode::orchestrator {
namespace {

using platform::EmulatedHostConfig;
using platform::EmulatedPlatform;
using ::testing::HasSubstr;

std::unique_ptr<EmulatedPlatform> Host(EmulatedHostConfig config = {}) {
  config.activation.fixed = absl::Microseconds(100);
  auto p = EmulatedPlatform::Create(config);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

std::vector<uint8_t> File(uint32_t revision = 0x2b000001) {
  microcode::GeneratorOptions o;
  o.revision = revision;
  o.data_size = 64 * 1024 - microcode::kHeaderSize;
  auto image = microcode::GenerateImage(o);
  EXPECT_TRUE(image.ok());
  return *image;
}

UpdateReport HostOnly(EmulatedPlatform& host, std::vector<uint8_t> file,
                      UpdateOptions options = {}) {
  return RunUpdate(host, std::move(file), {}, options);
}

TEST(HostOnlyUpdate, StagedLoadOnTheDemoHost) {
  auto host = Host();
  UpdateReport r = HostOnly(*host, File());
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.last_step, v1::STEP_DONE);
  ASSERT_TRUE(r.staging.has_value());
  EXPECT_TRUE(r.staging->all_staged()) << r.staging->Summary();
  ASSERT_TRUE(r.host.has_value());
  const late_load::LateLoadResult& load = r.host->load;
  EXPECT_EQ(load.summary, "updated on 8 primary CPUs with 8 siblings");
  EXPECT_EQ(load.modelled_critical_path, host->config().activation.Cost(64 * 1024, true));
  EXPECT_THAT(load.model_parameters, HasSubstr("activation model"));
  EXPECT_TRUE(r.host->verify.ok()) << r.host->verify;
  EXPECT_EQ(r.plan, "06-8f-08 pf 0x87: rev 0x2b000000 -> 0x2b000001 (2025-11-11), 64 KiB");
}

// Staging is opportunistic: a package that did not stage loads unstaged, and its cost is
// the critical path.
TEST(HostOnlyUpdate, UnstagedPackagesStillLoadAndSetTheCriticalPath) {
  EmulatedHostConfig none, one;
  none.mailbox.fault = platform::MailboxFault::kStatusError;
  one.mailbox_by_package[1].fault = platform::MailboxFault::kResponseError;
  for (const auto& [config, staged] : {std::pair{none, 0}, std::pair{one, 1}}) {
    auto host = Host(config);
    UpdateReport r = HostOnly(*host, File());
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.staging->staged_count(), staged);
    EXPECT_EQ(r.host->load.modelled_critical_path,
              host->config().activation.Cost(64 * 1024, false));
  }
}

TEST(HostOnlyUpdate, RefusesAnOlderImageWithTheHostUntouched) {
  auto host = Host({.revision = 0x2b000002});
  UpdateReport r = HostOnly(*host, File(0x2b000001));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("validate: no image fits this host"));
  EXPECT_FALSE(r.host_touched);
  EXPECT_EQ(r.last_step, v1::STEP_UNSPECIFIED);
}

// A host-only load of the image the host runs: with no VM views to sync, it is not newer.
TEST(HostOnlyUpdate, RefusesTheImageTheHostAlreadyRuns) {
  auto host = Host({.revision = 0x2b000001});
  UpdateReport r = HostOnly(*host, File(0x2b000001));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kFailedPrecondition) << r.status;
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("no image fits this host"));
}

TEST(HostOnlyUpdate, RefusesAnotherSignature) {
  auto host = Host({.signature = 0xa06d1});
  EXPECT_EQ(HostOnly(*host, File()).status.code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HostOnlyUpdate, MinRevRuleAndItsOverride) {
  // Below the generated image's min_req_revision 0x2b000000.
  auto host = Host({.revision = 0x2a000000});
  UpdateReport refused = HostOnly(*host, File());
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kFailedPrecondition) << refused.status;
  UpdateOptions ignore;
  ignore.policy = microcode::MinRevPolicy::kIgnore;
  UpdateReport forced = HostOnly(*host, File(), ignore);
  EXPECT_TRUE(forced.status.ok()) << forced.status;
}

TEST(HostOnlyUpdate, VerifyNamesTheCpusThatDisagree) {
  auto host = Host();
  absl::Status s = late_load::VerifyHostRevision(*host, 0x2b000001);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("16 CPUs not at 0x2b000001"));
}

TEST(StageUpdate, StagesEveryPackageAndLoadsNothing) {
  auto host = Host();
  std::vector<Step> steps;
  UpdateCallbacks cb;
  cb.emit = [&](Step step, absl::string_view, const staging::StagingProgress* p) {
    if (p == nullptr) steps.push_back(step);
  };
  const std::vector<uint8_t> file = File();
  UpdateReport r = StageUpdate(*host, file, {}, cb);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.staging->all_staged()) << r.staging->Summary();
  EXPECT_FALSE(r.host_touched);
  EXPECT_EQ(steps, (std::vector<Step>{v1::STEP_VALIDATED, v1::STEP_STAGED}));
  for (int p = 0; p < 2; ++p) EXPECT_TRUE(host->mailbox(p).HoldsStagedImage(file));
  EXPECT_EQ(*platform::ReadRevision(*host, 0), 0x2b000000u);
}

TEST(StageUpdate, CancelledBeforeStagingStagesNothing) {
  auto host = Host();
  UpdateCallbacks cb;
  cb.cancelled = [] { return true; };
  UpdateReport r = StageUpdate(*host, File(), {}, cb);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled) << r.status;
  EXPECT_FALSE(r.staging.has_value());
}

}  // namespace
}  // namespace ucode::orchestrator
