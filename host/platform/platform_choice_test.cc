#include "host/platform/platform_choice.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ucode::platform {
namespace {

using ::testing::HasSubstr;

TEST(PlatformChoice, DefaultIsTheDemoHost) {
  absl::StatusOr<std::unique_ptr<Platform>> p = MakePlatform({});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "emulated");
  absl::StatusOr<microcode::CpuIdentity> id = (*p)->Identity(0);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->signature, 0x806f8u);
}

TEST(PlatformChoice, OverridesApplyAfterTheFile) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/host.conf";
  std::ofstream(path) << "# a host file\nrevision = 0x2b000010\nplatform_id = 2\n";
  PlatformChoice c;
  c.host_config_path = path;
  c.host_overrides = {"platform_id=4"};
  absl::StatusOr<std::unique_ptr<Platform>> p = MakePlatform(c);
  ASSERT_TRUE(p.ok()) << p.status();
  absl::StatusOr<microcode::CpuIdentity> id = (*p)->Identity(0);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->current_revision, 0x2b000010u);
  EXPECT_EQ(id->platform_id, 4u);
  unlink(path.c_str());
}

TEST(PlatformChoice, BadChoicesAreNamed) {
  PlatformChoice c;
  c.backend = "xen";
  absl::StatusOr<std::unique_ptr<Platform>> p = MakePlatform(c);
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  EXPECT_THAT(p.status().message(), HasSubstr("'xen': expected emulated or linux"));

  c.backend = kEmulatedBackend;
  c.host_overrides = {"no_such_key=1"};
  EXPECT_THAT(MakePlatform(c).status().message(), HasSubstr("no_such_key"));

  c.host_overrides.clear();
  c.host_config_path = "/nonexistent/host.conf";
  EXPECT_FALSE(MakePlatform(c).ok());
}

}  // namespace
}  // namespace ucode::platform
