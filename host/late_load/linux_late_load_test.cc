// Late loading and staging on the Linux backend, against a fake sysfs/proc/dev tree whose
// kernel side (host/platform/fake_linux_kernel.h) answers reload the way the kernel does:
// it reads firmware only where the firmware loader looks, named after the CPU's own
// signature.
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/base/read_file.h"
#include "host/late_load/late_load.h"
#include "host/microcode/image_generator.h"
#include "host/microcode/release_dir.h"
#include "host/platform/fake_linux_kernel.h"
#include "host/platform/linux_platform.h"
#include "host/staging/staging_driver.h"

namespace ucode::late_load {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using platform::FakeKernelConfig;
using platform::FakeLinuxKernel;
using platform::LinuxPlatform;
using platform::LinuxPlatformOptions;
using platform::ReloadErrnoStatus;

std::string Read(const fs::path& path) { return ReadTextFile(path).value_or(""); }

std::vector<uint8_t> Bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

class FakeLinux : public ::testing::Test {
 protected:
  fs::path Root() {
    return fs::path(std::getenv("TEST_TMPDIR")) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  // A fresh tree; cpu3 (the sibling of cpu1) offline unless the config says otherwise.
  void Boot(FakeKernelConfig config = {}, const std::string& subdir = "") {
    if (config.offline.empty()) config.offline = {3};
    platform_.reset();
    const fs::path root = Root() / subdir;
    fs::remove_all(root);
    auto k = FakeLinuxKernel::Create(root.string(), config);
    ASSERT_TRUE(k.ok()) << k.status();
    kernel_ = std::move(*k);
    auto p = LinuxPlatform::Create(kernel_->PlatformOptions());
    ASSERT_TRUE(p.ok()) << p.status();
    platform_ = std::move(*p);
  }

  std::vector<uint8_t> Image(uint32_t revision = 0x2b000001) {
    auto image = microcode::GenerateImage({.revision = revision});
    EXPECT_TRUE(image.ok());
    return *image;
  }

  fs::path Under(const std::string& path) { return fs::path(kernel_->root()) / path; }

  // Prepare and activate in a row (the default platform is this test's).
  absl::StatusOr<LateLoadResult> Load(absl::Span<const uint8_t> image,
                                      platform::Platform* on = nullptr) {
    absl::StatusOr<PreparedLateLoad> load = PrepareLateLoad(on ? *on : *platform_, image);
    if (!load.ok()) return load.status();
    return load->Activate();
  }

  std::unique_ptr<FakeLinuxKernel> kernel_;
  std::unique_ptr<LinuxPlatform> platform_;
};

TEST_F(FakeLinux, ReloadReplacesTheFileTheKernelReadsAndKeepsThePrevious) {
  Boot();
  const std::string distro = "lib/firmware/intel-ucode/06-8f-08";
  ASSERT_TRUE(kernel_->WriteFile(distro, Bytes("previous")).ok());
  const auto image = Image();
  auto r = Load(image);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_EQ(r->summary, "updated on 2 primary CPUs with 1 siblings");
  EXPECT_EQ(r->kernel_log, (std::vector<std::string>{
                               "microcode: load: updated on 2 primary CPUs with 1 siblings",
                               "microcode: revision: 0x2b000000 -> 0x2b000001"}));
  ASSERT_TRUE(r->reload.has_value());
  EXPECT_EQ(r->reload->installed_path, Under(distro).string());
  EXPECT_EQ(r->reload->kernel_path, kernel_->last_firmware_path());
  EXPECT_EQ(r->reload->kernel_path, r->reload->installed_path);
  EXPECT_EQ(Read(Under(distro)), std::string(image.begin(), image.end()));
  EXPECT_EQ(Read(Under(distro + ".ucode-prev")), "previous");
  EXPECT_STREQ(r->window_name, platform::kReloadWriteWindow);
  EXPECT_EQ(*ReadRevision(*platform_, 2), 0x2b000001u);
}

// The firmware loader reads /lib/firmware/updates before /lib/firmware: an older file
// there would win over one written to /lib/firmware/intel-ucode.
TEST_F(FakeLinux, InstallsWhereTheKernelLooksFirst) {
  Boot();
  const auto older = Image(0x2b000001);
  ASSERT_TRUE(kernel_->WriteFile("lib/firmware/updates/intel-ucode/06-8f-08", older).ok());
  ASSERT_TRUE(kernel_->WriteFile("lib/firmware/intel-ucode/06-8f-08", older).ok());
  auto r = Load(Image(0x2b000002));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_EQ(kernel_->last_loaded_revision(), 0x2b000002u);
  EXPECT_EQ(r->reload->kernel_path, Under("lib/firmware/updates/intel-ucode/06-8f-08").string());
  EXPECT_EQ(r->reload->shadowed,
            (std::vector<std::string>{Under("lib/firmware/intel-ucode/06-8f-08").string()}));

  // No copy anywhere, firmware_class.path set: ours goes there, the first place searched.
  Boot({.firmware_class_path = "/opt/fw"});
  r = Load(Image());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(kernel_->last_firmware_path(), Under("opt/fw/intel-ucode/06-8f-08").string());

  // No copy, no parameter: /lib/firmware/updates.
  Boot();
  r = Load(Image());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(kernel_->last_firmware_path(),
            Under("lib/firmware/updates/intel-ucode/06-8f-08").string());
}

TEST_F(FakeLinux, KernelWithoutLateLoadingIsNamedAndNothingIsInstalled) {
  Boot({.late_loading = false});
  auto r = PrepareLateLoad(*platform_, Image());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("the kernel has late loading disabled"));
  EXPECT_THAT(r.status().message(), HasSubstr("CONFIG_MICROCODE_LATE_LOADING=n"));
  EXPECT_FALSE(fs::exists(Under("lib/firmware/updates/intel-ucode/06-8f-08")));
}

// The file is installed and warmed before anything is parked (PrepareLateLoad); a load
// dropped without activation (a park that failed) puts the previous file back.
TEST_F(FakeLinux, InstallHappensBeforeTheParkAndIsRolledBackIfItFails) {
  Boot();
  const std::string distro = "lib/firmware/intel-ucode/06-8f-08";
  ASSERT_TRUE(kernel_->WriteFile(distro, Bytes("previous")).ok());
  const auto image = Image();
  {
    auto prepared = PrepareLateLoad(*platform_, image);
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    EXPECT_EQ(Read(Under(distro)), std::string(image.begin(), image.end()));
  }
  EXPECT_EQ(Read(Under(distro)), "previous");
  EXPECT_FALSE(fs::exists(Under(distro + ".ucode-prev")));
  EXPECT_EQ(kernel_->last_firmware_path(), "");  // reload never written
}

// An install that fails half-way (the rollback name is taken) leaves the kernel's file as
// it was.
TEST_F(FakeLinux, FailedInstallLeavesTheExistingFileAlone) {
  Boot();
  const std::string distro = "lib/firmware/intel-ucode/06-8f-08";
  ASSERT_TRUE(kernel_->WriteFile(distro, Bytes("previous")).ok());
  fs::create_directories(Under(distro + ".ucode-prev/x"));
  auto r = Load(Image());
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(".ucode-prev"));
  EXPECT_EQ(Read(Under(distro)), "previous");
  for (const auto& e : fs::directory_iterator(Under("lib/firmware/intel-ucode"))) {
    EXPECT_EQ(e.path().string().find(".ucode-new"), std::string::npos) << e.path();
  }
}

TEST_F(FakeLinux, KernelAnswersAndRollsBack) {
  const std::string distro = "lib/firmware/intel-ucode/06-8f-08";
  // Not newer than the running revision: -ENOENT.
  Boot({.revision = 0x2b000005});
  ASSERT_TRUE(kernel_->WriteFile(distro, Bytes("previous")).ok());
  auto r = Load(Image());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r->status.message(), HasSubstr("-ENOENT"));
  EXPECT_EQ(Read(Under(distro)), "previous");

  // An offline primary thread: -EBUSY.
  Boot({.offline = {1}});
  r = Load(Image());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->status.message(), HasSubstr("-EBUSY"));
  EXPECT_FALSE(fs::exists(Under("lib/firmware/updates/intel-ucode/06-8f-08")));
}

// force_minrev makes the kernel skip an image whose min_rev the running revision does not
// reach; the message says that is the kernel enforcing the rule, not the reverse.
TEST_F(FakeLinux, ForceMinrevRefusalIsWordedTheRightWayRound) {
  Boot({.force_minrev = true});
  auto image = microcode::GenerateImage({.min_req_revision = 0x2b000001});
  ASSERT_TRUE(image.ok());
  auto r = Load(*image);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->status.message(),
              HasSubstr("only ones the minimal-revision rule rejects because the kernel runs "
                        "with force_minrev"));
  // Without force_minrev the kernel loads it (and says so).
  Boot({.force_minrev = false});
  r = Load(*image);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_THAT(r->kernel_log,
              testing::Contains("microcode: Late microcode loading without minimal revision check."));
}

TEST_F(FakeLinux, OtherErrnosKeepTheirMeaning) {
  for (int err : {EIO, EINVAL, EBADFD}) {
    Boot();
    LinuxPlatformOptions options = kernel_->PlatformOptions();
    options.write_reload = [err](const std::string&) { return err; };
    auto p = LinuxPlatform::Create(options);
    ASSERT_TRUE(p.ok());
    auto r = Load(Image(), p->get());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->status.ok());
    EXPECT_FALSE(fs::exists(Under("lib/firmware/updates/intel-ucode/06-8f-08"))) << err;
  }
  EXPECT_THAT(ReloadErrnoStatus(EBADFD).message(), HasSubstr("malformed"));
  EXPECT_THAT(ReloadErrnoStatus(ENOMEM).message(), HasSubstr("errno"));
}

// A 6.19 kernel on a staging CPU stages inside reload; the report times it from the log.
TEST_F(FakeLinux, KernelThatStagesItself) {
  Boot({.release = "6.19.0-1-amd64", .cpu_staging = true});
  auto r = Load(Image());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->status.ok()) << r->status;
  EXPECT_THAT(r->kernel_log,
              testing::Contains("microcode: Staging of patch revision 0x2b000001 succeeded."));
  ASSERT_TRUE(r->reload->staged_after.has_value());
  EXPECT_LE(*r->reload->staged_after, r->activation_window);

  // ucode's own staging through /dev/mem would be ABORTed by that kernel: refused, with
  // the reason, unless forced.
  staging::StagingReport refused = staging::StageAllPackages(*platform_, Image(), {});
  ASSERT_EQ(refused.packages.size(), 1u);
  EXPECT_EQ(refused.packages[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.packages[0].status.message(),
              HasSubstr("kernel 6.19.0-1-amd64 stages microcode itself"));
  staging::StagingReport forced = staging::StageAllPackages(*platform_, Image(), {.force = true});
  EXPECT_THAT(forced.packages[0].status.message(), HasSubstr("dev/mem"));

  // 6.18 does not stage: no refusal (it then fails only for want of /dev/mem here).
  Boot({.release = "6.18.3", .cpu_staging = true});
  staging::StagingReport older = staging::StageAllPackages(*platform_, Image(), {});
  EXPECT_THAT(older.packages[0].status.message(), HasSubstr("dev/mem"));
}

// Release 20251111 has seven files that match their CPU only through the extended
// signature table. Installed for such a CPU, each must land under the CPU's own name.
TEST_F(FakeLinux, ExtendedSignatureFilesAreInstalledUnderTheCpusOwnName) {
  auto dir = microcode::FindReleaseDir();
  ASSERT_TRUE(dir.ok()) << dir.status();
  int checked = 0;
  for (const char* name :
       {"06-8f-07", "06-97-05", "06-9a-04", "06-ba-03", "06-bf-02", "06-bf-05", "06-c5-02"}) {
    auto file = microcode::ReadFileBytes(absl::StrCat(*dir, "/", name));
    ASSERT_TRUE(file.ok()) << file.status();
    auto images = microcode::ParseBundleStrict(*file);
    ASSERT_TRUE(images.ok()) << name << ": " << images.status();
    // An image that matches the CPU this file is named after only by extension.
    const microcode::MicrocodeImage* match = nullptr;
    const microcode::ExtendedSignature* cpu = nullptr;
    for (const microcode::MicrocodeImage& image : *images) {
      for (const microcode::ExtendedSignature& ext : image.extended_signatures) {
        if (match == nullptr && microcode::FirmwareFileName(ext.signature) == name) {
          match = &image;
          cpu = &ext;
        }
      }
    }
    ASSERT_NE(match, nullptr) << name;
    ASSERT_NE(microcode::FirmwareFileName(match->header.signature), name);
    SCOPED_TRACE(name);
    Boot({.signature = cpu->signature,
          .platform_id = static_cast<uint32_t>(__builtin_ctz(cpu->platform_flags)),
          .revision = 1},
         name);
    auto r = Load(match->bytes);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->status.ok()) << r->status;
    EXPECT_EQ(kernel_->last_firmware_path(),
              Under(absl::StrCat("lib/firmware/updates/intel-ucode/", name)).string());
    EXPECT_EQ(kernel_->last_loaded_revision(), match->revision());
    EXPECT_FALSE(fs::exists(Under(absl::StrCat("lib/firmware/updates/intel-ucode/",
                                               microcode::FirmwareFileName(match->header.signature)))));
    ++checked;
  }
  EXPECT_EQ(checked, 7);
}

// Nothing predicts the kernel's reload until one was measured; then the longest one
// measured is the bound the orchestrator holds against the VMs' dead-man.
TEST_F(FakeLinux, PredictedActivationIsTheLongestReloadMeasured) {
  Boot();
  const auto image = Image();
  EXPECT_FALSE(platform_->PredictActivation(image).has_value());
  auto r = Load(image);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->status.ok()) << r->status;
  std::optional<absl::Duration> predicted = platform_->PredictActivation(image);
  ASSERT_TRUE(predicted.has_value());
  EXPECT_EQ(*predicted, r->activation_window);
}

}  // namespace
}  // namespace ucode::late_load
