// The real 06-8f-08 (Sapphire Rapids) and 06-ad-01 (Granite Rapids) files of the 20251111
// release, staged and late-loaded on an emulated host of the matching signature and
// platform id (taken from the file's first image). Skips, saying why, without the data.
#include <algorithm>

#include "gtest/gtest.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"
#include "host/platform/emulated_platform.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode {
namespace {

class RealImages : public ::testing::TestWithParam<const char*> {};

TEST_P(RealImages, StagedAndLoadedOnAMatchingHost) {
  absl::StatusOr<std::string> dir = microcode::FindReleaseDir();
  if (!dir.ok()) GTEST_SKIP() << "no microcode release: " << dir.status();
  absl::StatusOr<std::vector<uint8_t>> file =
      microcode::ReadFileBytes(*dir + "/" + GetParam());
  if (!file.ok()) GTEST_SKIP() << file.status();
  auto images = microcode::ParseBundleStrict(*file);
  ASSERT_TRUE(images.ok()) << images.status();
  const microcode::MicrocodeHeader& h = images->front().header;

  platform::EmulatedHostConfig config;
  config.cores_per_package = 4;
  config.signature = h.signature;
  config.platform_id = static_cast<uint32_t>(__builtin_ctz(h.platform_flags));
  config.revision = std::max(h.min_req_revision, h.revision - 1);
  config.offline_cpus = {config.cpu_count() - 1};  // one offline SMT sibling
  for (bool stage : {true, false}) {
    auto host = platform::EmulatedPlatform::Create(config);
    ASSERT_TRUE(host.ok());
    // No VMs: the host-only load.
    orchestrator::UpdateReport report =
        orchestrator::RunUpdate(**host, *file, {}, {.stage = stage});
    ASSERT_TRUE(report.status.ok()) << report.status;
    const late_load::LateLoadResult& load = report.host->load;
    EXPECT_EQ(load.new_revision, h.revision);
    EXPECT_EQ(load.updated, 8);
    EXPECT_EQ(load.siblings, 7);
    EXPECT_EQ(load.offline, 1);
    const size_t size = images->front().total_size();
    EXPECT_EQ(load.modelled_critical_path, config.activation.Cost(size, stage));
    if (stage) {
      EXPECT_TRUE(report.staging->all_staged()) << report.staging->Summary();
      for (int p = 0; p < 2; ++p) {
        EXPECT_TRUE((*host)->mailbox(p).HoldsStagedImage(images->front().bytes));
        EXPECT_EQ(report.staging->packages[p].transactions, static_cast<int>((size + 4095) / 4096));
      }
    }
    std::printf("%s %s: %s, critical path %s, window %s\n", GetParam(),
                stage ? "staged" : "unstaged", load.summary.c_str(),
                absl::FormatDuration(load.modelled_critical_path).c_str(),
                absl::FormatDuration(load.activation_window).c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Release20251111, RealImages, ::testing::Values("06-8f-08", "06-ad-01"));

}  // namespace
}  // namespace ucode
