// The Linux backend's topology and identity against a fake sysfs/proc/dev tree
// (fake_linux_kernel.h). Late loading and staging through it:
// host/late_load/linux_late_load_test.cc.
#include "host/platform/linux_platform.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/platform/fake_linux_kernel.h"

namespace ucode::platform {
namespace {

using ::testing::HasSubstr;

class FakeLinux : public ::testing::Test {
 protected:
  // A fresh tree of its own for each boot; cpu3 (the sibling of cpu1) offline.
  void Boot(FakeKernelConfig config = {}) {
    config.offline = {3};
    platform_.reset();
    const std::string root = absl::StrCat(
        std::getenv("TEST_TMPDIR"), "/",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "-", ++boots_);
    absl::StatusOr<std::unique_ptr<FakeLinuxKernel>> kernel = FakeLinuxKernel::Create(root, config);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    kernel_ = std::move(*kernel);
    absl::StatusOr<std::unique_ptr<LinuxPlatform>> backend =
        LinuxPlatform::Create(kernel_->PlatformOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    platform_ = std::move(*backend);
  }

  int boots_ = 0;
  std::unique_ptr<FakeLinuxKernel> kernel_;
  std::unique_ptr<LinuxPlatform> platform_;
};

TEST_F(FakeLinux, TopologyAndIdentity) {
  Boot();
  auto topo = platform_->GetTopology();
  ASSERT_TRUE(topo.ok()) << topo.status();
  ASSERT_EQ(topo->cpus.size(), 4u);
  EXPECT_EQ(topo->cpus[2].thread, 1);
  EXPECT_EQ(topo->cpus[2].core, 0);
  EXPECT_FALSE(topo->cpus[3].online);
  EXPECT_EQ(topo->CorePrimaries(), (std::vector<int>{0, 1}));
  auto id = platform_->Identity(1);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->signature, 0x806f8u);
  EXPECT_EQ(id->platform_id, 7u);
  EXPECT_EQ(id->current_revision, 0x2b000000u);
  EXPECT_TRUE(*platform_->HasArchCapabilities(0));
  EXPECT_EQ(platform_->KernelRelease(), "6.18.0-1-amd64");
}

// SDM §10.11.7: write 0 to MSR 0x8B, CPUID(1), read. With msr.allow_writes=on the write
// happens (the CPU found 0 there at CPUID); otherwise it would taint the kernel, so it is
// skipped and only CPUID(1) reloads the value.
TEST_F(FakeLinux, RevisionComesFromMsr8bInTheSdmOrder) {
  Boot();
  ASSERT_TRUE(platform_->Identity(0).ok());
  EXPECT_EQ(kernel_->msr_8b_before_cpuid(), (std::vector<uint64_t>{0}));

  Boot({.msr_allow_writes = "default"});
  ASSERT_TRUE(platform_->Identity(0).ok());
  EXPECT_EQ(kernel_->msr_8b_before_cpuid(), (std::vector<uint64_t>{uint64_t{0x2b000000} << 32}));
}

TEST_F(FakeLinux, MsrAndTheKernelsCachedVersionMustAgree) {
  Boot();
  kernel_->SetSysfsVersion(1, 0x2a000000);  // the kernel's copy is stale
  auto id = platform_->Identity(1);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(id.status().message(), HasSubstr("MSR 0x8B reports revision 0x2b000000"));
  EXPECT_THAT(id.status().message(), HasSubstr("version says 0x2a000000"));
}

TEST_F(FakeLinux, WithoutTheMsrDeviceTheKernelsVersionIsUsed) {
  Boot({.msr_device = false});
  kernel_->SetSysfsVersion(1, 0x2a000000);
  auto id = platform_->Identity(1);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->current_revision, 0x2a000000u);
  auto missing = platform_->ReadMsr(1, kMsrUcodeRevision);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("msr module"));
}

}  // namespace
}  // namespace ucode::platform
