#include "host/late_load/host_update.h"

#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"

namespace ucode::late_load {
namespace {

using platform::EmulatedHostConfig;
using platform::EmulatedPlatform;

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

TEST(HostUpdate, StagedLoadOnTheDemoHost) {
  auto host = Host();
  auto report = RunHostUpdate(*host, File(), {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->status().ok()) << report->status();
  ASSERT_TRUE(report->staging.has_value());
  EXPECT_TRUE(report->staging->all_staged()) << report->staging->Summary();
  const LateLoadResult& load = report->load.load;
  EXPECT_EQ(load.summary, "updated on 8 primary CPUs with 8 siblings");
  EXPECT_EQ(load.modelled_critical_path, host->config().activation.Cost(64 * 1024, true));
  EXPECT_NE(load.model_parameters.find("activation model"), std::string::npos);
  EXPECT_EQ(report->plan, "06-8f-08 pf 0x87: rev 0x2b000000 -> 0x2b000001 (2025-11-11), 64 KiB");
}

TEST(HostUpdate, FailedStagingStillLoadsUnstaged) {
  EmulatedHostConfig config;
  config.mailbox.fault = platform::MailboxFault::kStatusError;
  auto host = Host(config);
  auto report = RunHostUpdate(*host, File(), {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->staging->staged_count(), 0);
  EXPECT_TRUE(report->status().ok()) << report->status();
  EXPECT_EQ(report->load.load.modelled_critical_path,
            host->config().activation.Cost(64 * 1024, false));
}

TEST(HostUpdate, OnePackageStagedIsTheCriticalPathOfTheOther) {
  EmulatedHostConfig config;
  config.mailbox_by_package[1].fault = platform::MailboxFault::kResponseError;
  auto host = Host(config);
  auto report = RunHostUpdate(*host, File(), {});
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->staging->staged_count(), 1);
  EXPECT_EQ(report->load.load.modelled_critical_path,
            host->config().activation.Cost(64 * 1024, false));
}

TEST(HostUpdate, RefusesAnImageThatIsNotNewer) {
  EmulatedHostConfig config;
  config.revision = 0x2b000001;
  auto host = Host(config);
  auto report = RunHostUpdate(*host, File(0x2b000001), {});
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(report.status().message().find("no image fits this host"), std::string::npos)
      << report.status();
}

TEST(HostUpdate, RefusesAnotherSignature) {
  EmulatedHostConfig config;
  config.signature = 0xa06d1;
  auto host = Host(config);
  auto report = RunHostUpdate(*host, File(), {});
  EXPECT_EQ(report.status().code(), absl::StatusCode::kFailedPrecondition) << report.status();
}

TEST(HostUpdate, MinRevRuleAndForce) {
  EmulatedHostConfig config;
  config.revision = 0x2a000000;  // below the generated image's min_req_revision 0x2b000000
  auto host = Host(config);
  auto refused = RunHostUpdate(*host, File(), {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  HostUpdateOptions force;
  force.policy = microcode::MinRevPolicy::kIgnore;
  auto forced = RunHostUpdate(*host, File(), force);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_TRUE(forced->status().ok());
}

TEST(HostUpdate, VerifyNamesTheCpusThatDisagree) {
  auto host = Host();
  absl::Status s = VerifyHostRevision(*host, 0x2b000001);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("16 CPUs not at 0x2b000001"), std::string::npos) << s;
}

}  // namespace
}  // namespace ucode::late_load
