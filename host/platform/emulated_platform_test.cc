#include "host/platform/emulated_platform.h"

#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"

namespace ucode::platform {
namespace {

TEST(EmulatedPlatform, TopologyNumbersThreadsLikeLinux) {
  auto p = EmulatedPlatform::Create({.offline_cpus = {9}});  // 2 x 4 x 2
  ASSERT_TRUE(p.ok()) << p.status();
  auto topo = (*p)->GetTopology();
  ASSERT_TRUE(topo.ok());
  ASSERT_EQ(topo->cpus.size(), 16u);
  EXPECT_EQ(topo->cpus[5].package, 1);
  EXPECT_EQ(topo->cpus[5].core, 1);
  EXPECT_EQ(topo->cpus[13].thread, 1);
  EXPECT_EQ(topo->PrimaryOf(13), 5);
  EXPECT_FALSE(topo->cpus[9].online);
  EXPECT_EQ(topo->OnlineCount(), 15);
  EXPECT_EQ(topo->CorePrimaries().size(), 8u);
  EXPECT_EQ(topo->PackageLeaders(), (std::vector<int>{0, 4}));
}

TEST(EmulatedPlatform, MsrsDescribeTheConfiguredCpu) {
  auto p = EmulatedPlatform::Create(DemoHostConfig());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*(*p)->ReadMsr(3, kMsrUcodeRevision), uint64_t{0x2b000000} << 32);
  EXPECT_EQ(*(*p)->ReadMsr(3, kMsrPlatformId), uint64_t{7} << 50);
  EXPECT_EQ(*(*p)->ReadMsr(0, kMsrArchCapabilities) & kArchCapMcuEnumeration,
            kArchCapMcuEnumeration);
  EXPECT_EQ(*(*p)->ReadMsr(0, kMsrMcuEnumeration), kMcuEnumerationStaging);
  EXPECT_EQ(*(*p)->ReadMsr(5, kMsrMcuStagingMboxAddr), 0xfd001000u);
  EXPECT_EQ((*p)->ReadMsr(0, 0x1234).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*p)->WriteMsr(0, kMsrUcodeTrigger, 0).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(EmulatedPlatform, NoStagingMeansNoMailbox) {
  auto p = EmulatedPlatform::Create({.staging = false});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*(*p)->ReadMsr(0, kMsrArchCapabilities), 0u);
  EXPECT_FALSE((*p)->ReadMsr(0, kMsrMcuStagingMboxAddr).ok());
  EXPECT_FALSE((*p)->MapMmio(0xfd000000, 16).ok());
}

TEST(EmulatedPlatform, ApplyUpdateChecksTheImageAndUpdatesTheWholeCore) {
  EmulatedHostConfig config;
  config.activation.fixed = absl::Microseconds(10);
  auto p = EmulatedPlatform::Create(config);
  ASSERT_TRUE(p.ok());
  auto image = microcode::GenerateImage({});  // 0x806f8 pf 0x87 rev 0x2b000001
  ASSERT_TRUE(image.ok()) << image.status();
  auto cost = (*p)->ApplyUpdateOnCpu(1, *image);
  ASSERT_TRUE(cost.ok()) << cost.status();
  EXPECT_EQ(*cost, config.activation.Cost(image->size(), /*staged=*/false));
  EXPECT_EQ(*ReadRevision(**p, 1), 0x2b000001u);
  EXPECT_EQ(*ReadRevision(**p, 9), 0x2b000001u);  // SMT sibling of cpu 1
  EXPECT_EQ(*ReadRevision(**p, 2), 0x2b000000u);  // another core
  // Same revision again: the core refuses (not newer).
  EXPECT_EQ((*p)->ApplyUpdateOnCpu(1, *image).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Wrong signature.
  auto wrong = microcode::GenerateImage({.signature = 0x606a6});
  ASSERT_TRUE(wrong.ok());
  auto s = (*p)->ApplyUpdateOnCpu(2, *wrong).status();
  EXPECT_NE(s.message().find("does not match"), std::string::npos) << s;
  // Corrupt bytes: the core runs the image checks.
  std::vector<uint8_t> bad = *image;
  bad[100] ^= 1;
  EXPECT_EQ((*p)->ApplyUpdateOnCpu(3, bad).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(EmulatedHostConfig, ParsesKeyValueText) {
  auto c = ParseEmulatedHostConfig(
      "# comment\npackages = 2\ncores = 8\nthreads=2\noffline = 17, 18\n"
      "signature = 0xa06d1\nplatform_id = 4\nrevision = 0x10000000\nstaging = false\n"
      "mailbox_fault = repeat-chunk\nmailbox_fault_count = 3\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->cpu_count(), 32);
  EXPECT_EQ(c->offline_cpus, (std::set<int>{17, 18}));
  EXPECT_EQ(c->signature, 0xa06d1u);
  EXPECT_EQ(c->platform_id, 4u);
  EXPECT_FALSE(c->staging);
  EXPECT_EQ(c->mailbox.fault, MailboxFault::kRepeatChunk);
  EXPECT_EQ(c->mailbox.count, 3);
}

TEST(EmulatedHostConfig, MicrosecondValuesMayHaveAFraction) {
  auto c = ParseEmulatedHostConfig(
      "activation_staged_us_per_kib = 9.8\nactivation_fixed_us = 500\nmailbox_delay_us = 0.25\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->activation.per_kib_staged, absl::Nanoseconds(9800));
  EXPECT_EQ(c->activation.fixed, absl::Microseconds(500));
  EXPECT_EQ(c->mailbox.transaction_delay, absl::Nanoseconds(250));
  EXPECT_EQ(ParseEmulatedHostConfig("activation_fixed_us = -1\n").status().message(),
            "host config line 1: activation_fixed_us: not a duration in microseconds "
            "(0 to 60000000, fractions allowed)");
  EXPECT_FALSE(ParseEmulatedHostConfig("activation_fixed_us = nan\n").ok());
}

TEST(EmulatedPlatform, NoArchCapabilitiesMsrMeansGeneralProtection) {
  auto c = ParseEmulatedHostConfig("arch_capabilities = false\n");
  ASSERT_TRUE(c.ok()) << c.status();
  auto p = EmulatedPlatform::Create(*c);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(*(*p)->HasArchCapabilities(0));
  EXPECT_FALSE((*p)->ReadMsr(0, kMsrArchCapabilities).ok());
}

TEST(EmulatedHostConfig, ErrorsNameTheLine) {
  // The line number and the key, never the line's text (it may be a secret file's).
  std::string unknown(ParseEmulatedHostConfig("packages = 2\nbogus = 1\n").status().message());
  EXPECT_EQ(unknown.rfind("host config line 2: unknown key; keys: packages, ", 0), 0u) << unknown;
  EXPECT_EQ(unknown.find("bogus"), std::string::npos) << unknown;
  EXPECT_EQ(ParseEmulatedHostConfig("cores = x\n").status().message(),
            "host config line 1: cores: not a number");
  EXPECT_EQ(ParseEmulatedHostConfig("revision = 0x100000000\n").status().message(),
            "host config line 1: revision: above the maximum 0xffffffff");
  EXPECT_FALSE(ParseEmulatedHostConfig("offline = 99\n").ok());
  EXPECT_FALSE(ParseEmulatedHostConfig("packages\n").ok());
}

}  // namespace
}  // namespace ucode::platform
