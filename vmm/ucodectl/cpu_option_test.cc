#include "vmm/ucodectl/cpu_option.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ucode::ctl {
namespace {

using ::testing::HasSubstr;

TEST(CpuOption, SignatureAloneDefaultsToPlatformZeroRevisionZero) {
  absl::StatusOr<microcode::CpuIdentity> c = ParseCpuOption("806f8");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->signature, 0x806f8u);
  EXPECT_EQ(c->platform_id, 0u);
  EXPECT_EQ(c->current_revision, 0u);
}

TEST(CpuOption, PfMaskBecomesPlatformId) {
  absl::StatusOr<microcode::CpuIdentity> c = ParseCpuOption("0x806f8,0x80,0x2b000000");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->platform_id, 7u);
  EXPECT_EQ(c->current_revision, 0x2b000000u);
  EXPECT_EQ(ParseCpuOption("0x806f8,0x10")->platform_id, 4u);
}

TEST(CpuOption, BadPartsAreNamed) {
  EXPECT_THAT(ParseCpuOption("zz").status().message(), HasSubstr("want SIG[,PF[,REV]]"));
  EXPECT_THAT(ParseCpuOption("1,2,3,4").status().message(), HasSubstr("want SIG[,PF[,REV]]"));
  EXPECT_THAT(ParseCpuOption("1,0x3").status().message(), HasSubstr("not a one-bit mask"));
  EXPECT_THAT(ParseCpuOption("1,0").status().message(), HasSubstr("not a one-bit mask"));
  EXPECT_THAT(ParseCpuOption("1,0x100").status().message(), HasSubstr("not a one-bit mask"));
  EXPECT_THAT(ParseCpuOption("1,x").status().message(), HasSubstr("PF is not a number"));
  EXPECT_THAT(ParseCpuOption("1,1,q").status().message(), HasSubstr("REV"));
  EXPECT_FALSE(ParseCpuOption("806f8:4").ok());  // the old client-only syntax
}

}  // namespace
}  // namespace ucode::ctl
