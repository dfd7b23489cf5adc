// On a Linux host the kernel's reload write is the activation: strict mode parks across
// it, so the firmware file must be installed (and warm) before the park, and the report
// must say what the park held.
#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/fake_linux_kernel.h"
#include "vmm/orchestrator/clock_group.h"
#include "vmm/orchestrator/report.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode::orchestrator {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

struct ParkRun {
  UpdateReport report;
  bool installed_at_park = false;
};

ParkRun Update(UpdateMode mode) {
  const fs::path root = fs::path(std::getenv("TEST_TMPDIR")) / UpdateModeName(mode);
  fs::remove_all(root);
  auto kernel = platform::FakeLinuxKernel::Create(
      root.string(), {.release = "6.19.0-1-amd64", .cpu_staging = true});
  EXPECT_TRUE(kernel.ok()) << kernel.status();
  auto linux = platform::LinuxPlatform::Create((*kernel)->PlatformOptions());
  EXPECT_TRUE(linux.ok()) << linux.status();
  ParkRun run;
  const fs::path file = root / "lib/firmware/updates/intel-ucode/06-8f-08";
  ClockGuestGroup group([&] {
    run.installed_at_park = fs::exists(file);
    return absl::OkStatus();
  });
  GuestGroup* groups[] = {&group};
  auto image = microcode::GenerateImage({});
  EXPECT_TRUE(image.ok());
  UpdateOptions options;
  options.mode = mode;
  run.report = RunUpdate(**linux, *image, groups, options);
  return run;
}

TEST(LinuxPark, StrictParksOnlyAfterTheFileIsInstalledAndSaysWhatItHeld) {
  ParkRun run = Update(v1::UPDATE_MODE_STRICT);
  ASSERT_TRUE(run.report.status.ok()) << run.report.status;
  EXPECT_TRUE(run.installed_at_park);
  const std::string text = ReportText(ToProto(run.report));
  EXPECT_THAT(text, HasSubstr("across the host's reload write (kernel firmware request, kernel "
                              "staging, stop_machine)"));
  EXPECT_THAT(text, HasSubstr("of which firmware request + kernel staging"));
  EXPECT_THAT(text, HasSubstr("file installed and warmed before the park"));
  EXPECT_THAT(text, HasSubstr("kernel read "));
  EXPECT_EQ(ToProto(run.report).host().window(),
            "reload write (kernel firmware request, kernel staging, stop_machine)");
  EXPECT_GE(run.report.held, run.report.host->load.activation_window);
}

TEST(LinuxPark, FastParksOnlyForTheGuestView) {
  ParkRun run = Update(v1::UPDATE_MODE_FAST);
  ASSERT_TRUE(run.report.status.ok()) << run.report.status;
  EXPECT_THAT(ReportText(ToProto(run.report)), HasSubstr("for the guest-view switch only"));
}

}  // namespace
}  // namespace ucode::orchestrator
