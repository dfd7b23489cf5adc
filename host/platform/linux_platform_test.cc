// The Linux backend against a fake sysfs/proc/dev tree, with a responder playing the
// kernel's microcode/reload for each outcome.
#include "host/platform/linux_platform.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "host/late_load/late_load.h"
#include "host/microcode/image_generator.h"

namespace ucode::platform {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& text, bool append = false) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, append ? std::ios::app : std::ios::trunc) << text;
}

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class FakeLinux : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(std::getenv("TEST_TMPDIR")) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    const fs::path cpu = root_ / "sys/devices/system/cpu";
    Write(cpu / "present", "0-3\n");
    // 1 package, 2 cores, 2 threads; cpu3 (sibling of cpu1) offline.
    for (int id = 0; id < 4; ++id) {
      const fs::path c = cpu / absl::StrCat("cpu", id);
      if (id != 0) Write(c / "online", id == 3 ? "0\n" : "1\n");
      if (id != 3) {
        Write(c / "topology/physical_package_id", "0\n");
        Write(c / "topology/core_id", absl::StrCat(id % 2, "\n"));
        Write(c / "topology/thread_siblings_list", id % 2 ? "1,3\n" : "0,2\n");
      }
      Write(c / "microcode/version", "0x2b000000\n");
      Write(c / "microcode/processor_flags", "0x80\n");
      Write(root_ / "proc/cpuinfo", absl::StrCat("processor\t: ", id,
                                                 "\ncpu family\t: 6\nmodel\t\t: 143\nstepping\t: 8\n\n"),
            /*append=*/true);
    }
    Write(cpu / "microcode/reload", "");
    Write(root_ / "dev/kmsg", "6,1,1,-;microcode: an old line\n");
    // An MSR device: a sparse file with MSR 0x8B's value at offset 0x8B.
    fs::create_directories(root_ / "dev/cpu/0");
    std::ofstream msr(root_ / "dev/cpu/0/msr", std::ios::binary);
    msr.seekp(0x8B);
    const uint64_t rev = uint64_t{0x2b000000} << 32;
    msr.write(reinterpret_cast<const char*>(&rev), sizeof(rev));
  }

  // The kernel's side of reload: check the installed file, update versions, log, answer.
  int Kernel(int answer) {
    const fs::path fw = root_ / "lib/firmware/intel-ucode/06-8f-08";
    installed_ = Read(fw);
    if (answer == 0) {
      for (int id : {0, 1, 2}) {
        Write(root_ / absl::StrCat("sys/devices/system/cpu/cpu", id, "/microcode/version"),
              "0x2b000001\n");
      }
      Write(root_ / "dev/kmsg",
            "6,2,2,-;microcode: load: updated on 2 primary CPUs with 1 siblings\n"
            "6,3,3,-;microcode: revision: 0x2b000000 -> 0x2b000001\n",
            true);
    } else if (answer == EIO) {
      Write(root_ / "dev/kmsg", "3,2,2,-;microcode: update failed: 2 CPUs failed 0 CPUs timed out\n",
            true);
    }
    return answer;
  }

  std::unique_ptr<LinuxPlatform> Platform(int answer) {
    LinuxPlatformOptions options;
    options.root = root_.string();
    options.write_reload = [this, answer](const std::string& path) {
      EXPECT_TRUE(fs::exists(path)) << path;
      return Kernel(answer);
    };
    auto p = LinuxPlatform::Create(options);
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  std::vector<uint8_t> Image() {
    auto image = microcode::GenerateImage({});
    EXPECT_TRUE(image.ok());
    return *image;
  }

  fs::path root_;
  std::string installed_;
};

TEST_F(FakeLinux, TopologyAndIdentity) {
  auto p = Platform(0);
  auto topo = p->GetTopology();
  ASSERT_TRUE(topo.ok()) << topo.status();
  ASSERT_EQ(topo->cpus.size(), 4u);
  EXPECT_EQ(topo->cpus[2].thread, 1);
  EXPECT_EQ(topo->cpus[2].core, 0);
  EXPECT_FALSE(topo->cpus[3].online);
  EXPECT_EQ(topo->CorePrimaries(), (std::vector<int>{0, 1}));
  auto id = p->Identity(1);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->signature, 0x806f8u);
  EXPECT_EQ(id->platform_id, 7u);
  EXPECT_EQ(id->current_revision, 0x2b000000u);
}

TEST_F(FakeLinux, MsrThroughTheDevice) {
  auto p = Platform(0);
  EXPECT_EQ(*p->ReadMsr(0, kMsrUcodeRevision), uint64_t{0x2b000000} << 32);
  auto missing = p->ReadMsr(1, kMsrUcodeRevision);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("msr module"), std::string::npos);
}

TEST_F(FakeLinux, ReloadSuccessInstallsAndCollectsTheKernelLog) {
  Write(root_ / "lib/firmware/intel-ucode/06-8f-08", "previous");
  auto p = Platform(0);
  const auto image = Image();
  auto r = late_load::RunLateLoad(*p, image, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_EQ(r->summary, "updated on 2 primary CPUs with 1 siblings");
  EXPECT_EQ(r->kernel_log, (std::vector<std::string>{
                               "microcode: load: updated on 2 primary CPUs with 1 siblings",
                               "microcode: revision: 0x2b000000 -> 0x2b000001"}));
  EXPECT_EQ(installed_, std::string(image.begin(), image.end()));
  EXPECT_EQ(Read(root_ / "lib/firmware/intel-ucode/06-8f-08.ucode-prev"), "previous");
}

// Nothing predicts the kernel's reload until one was measured; then the longest one
// measured is the bound the orchestrator holds against the VMs' dead-man.
TEST_F(FakeLinux, PredictedActivationIsTheLongestReloadMeasured) {
  Write(root_ / "lib/firmware/intel-ucode/06-8f-08", "previous");
  auto p = Platform(0);
  const auto image = Image();
  EXPECT_FALSE(p->PredictActivation(image).has_value());
  auto r = late_load::RunLateLoad(*p, image, {});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->status.ok()) << r->status;
  std::optional<absl::Duration> predicted = p->PredictActivation(image);
  ASSERT_TRUE(predicted.has_value());
  EXPECT_EQ(*predicted, r->activation_window);
}

struct ErrnoCase {
  int err;
  absl::StatusCode code;
  const char* text;
};

TEST_F(FakeLinux, EachReloadErrnoHasItsMessageAndRollsBack) {
  for (const ErrnoCase& c : {ErrnoCase{ENOENT, absl::StatusCode::kFailedPrecondition, "-ENOENT"},
                             ErrnoCase{EBUSY, absl::StatusCode::kFailedPrecondition, "offline"},
                             ErrnoCase{EIO, absl::StatusCode::kInternal, "2 CPUs failed"},
                             ErrnoCase{EINVAL, absl::StatusCode::kInvalidArgument, "-EINVAL"}}) {
    Write(root_ / "lib/firmware/intel-ucode/06-8f-08", "previous");
    auto p = Platform(c.err);
    auto r = late_load::RunLateLoad(*p, Image(), {});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status.code(), c.code) << c.err << ": " << r->status;
    EXPECT_NE(r->status.message().find(c.text), std::string::npos) << r->status;
    EXPECT_EQ(Read(root_ / "lib/firmware/intel-ucode/06-8f-08"), "previous") << c.err;
  }
}

TEST(ReloadErrnoStatus, UnknownErrnoKeepsTheErrno) {
  EXPECT_NE(ReloadErrnoStatus(ENOMEM).message().find("errno"), std::string::npos);
}

}  // namespace
}  // namespace ucode::platform
