#include "host/rehearsal/rehearsal.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_config.h"
#include "host/rehearsal/report.h"

namespace ucode::rehearsal {
namespace {

namespace fs = std::filesystem;
namespace mc = ::ucode::microcode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<uint8_t> Image(uint32_t signature, uint32_t revision, uint32_t min_rev,
                           std::vector<mc::ExtendedSignature> extended = {}) {
  absl::StatusOr<std::vector<uint8_t>> image =
      mc::GenerateImage({.signature = signature,
                         .platform_flags = 0x87,
                         .revision = revision,
                         .min_req_revision = min_rev,
                         .extended_signatures = std::move(extended)});
  EXPECT_TRUE(image.ok()) << image.status();
  return image.ok() ? *image : std::vector<uint8_t>{};
}

std::vector<uint8_t> Corrupted(std::vector<uint8_t> image) {
  image[mc::kHeaderSize + 8] ^= 0x5a;  // a data dword: the data checksum no longer sums to 0
  return image;
}

class RehearsalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(std::getenv("TEST_TMPDIR")) / info->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }

  // Writes `images` back to back into <root>/<dir>/<file>; returns the directory.
  std::string Write(const std::string& dir, const std::string& file,
                    const std::vector<std::vector<uint8_t>>& images) {
    fs::create_directories(root_ / dir);
    std::ofstream out(root_ / dir / file, std::ios::binary);
    for (const auto& image : images) {
      out.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
    }
    return (root_ / dir).string();
  }

  static std::vector<FleetSku> Fleet(const std::string& line) {
    absl::StatusOr<std::vector<FleetSku>> fleet = ParseFleet(line);
    EXPECT_TRUE(fleet.ok()) << fleet.status();
    return fleet.ok() ? *fleet : std::vector<FleetSku>{};
  }

  static RehearsalReport Run(const std::string& release, const std::string& fleet,
                             const std::string& baseline = "") {
    ImageSet images = ImageSet::Load({release});
    if (baseline.empty()) return Rehearse(images, nullptr, Fleet(fleet));
    ImageSet before = ImageSet::Load({baseline});
    return Rehearse(images, &before, Fleet(fleet));
  }

  fs::path root_;
};

constexpr char kSpr[] = "spr 0x806f8 7 0x2b000620 1x2x2 deadline=50ms";

TEST_F(RehearsalTest, NewerImageByPrimarySignatureWithModelledWindows) {
  const std::vector<uint8_t> image = Image(0x806f8, 0x2b000650, 0x2b000161);
  RehearsalReport report = Run(Write("r", "06-8f-08", {image}), kSpr);
  ASSERT_EQ(report.skus.size(), 1u);
  const SkuResult& r = report.skus[0];
  EXPECT_TRUE(report.ok()) << ReportTable(report);
  EXPECT_EQ(r.image, "06-8f-08@0x0");
  EXPECT_EQ(r.new_revision, 0x2b000650u);
  EXPECT_EQ(r.match, "primary");
  EXPECT_EQ(r.min_rev, "ok: min_rev 0x2b000161 <= 0x2b000620");
  // The windows are the activation model's, not wall time.
  const platform::ActivationModel model = platform::DemoHostConfig().activation;
  EXPECT_EQ(r.window_staged, model.Cost(image.size(), /*staged=*/true));
  EXPECT_EQ(r.window_unstaged, model.Cost(image.size(), /*staged=*/false));
}

TEST_F(RehearsalTest, MatchThroughExtendedSignatureTable) {
  std::string dir = Write("r", "06-8f-07",
                          {Image(0x806f8, 0x2b000650, 0x2b000161, {{0x806f7, 0x87, 0}})});
  RehearsalReport report = Run(dir, "e4 0x806f7 7 0x2b000620 1x2x2");
  EXPECT_TRUE(report.ok()) << ReportTable(report);
  EXPECT_EQ(report.skus[0].image, "06-8f-07@0x0");
  EXPECT_EQ(report.skus[0].match, "extended");
}

TEST_F(RehearsalTest, OnlyTheFileNamedForTheSignatureCountsWhenThereIsOne) {
  Write("r", "bundle", {Image(0x806f8, 0x2b000700, 0x2b000161)});
  std::string dir = Write("r", "06-8f-08", {Image(0x806f8, 0x2b000620, 0x2b000161)});
  RehearsalReport report = Run(dir, kSpr);
  EXPECT_TRUE(report.ok()) << ReportTable(report);
  EXPECT_FALSE(report.skus[0].has_update());
  EXPECT_EQ(report.skus[0].note, "up to date: 06-8f-08@0x0 is the running revision");

  // Without a file of that name (a bundle), every image is a candidate.
  report = Run((root_ / "r" / "bundle").string(), kSpr);
  EXPECT_EQ(report.skus[0].image, "bundle@0x0");
}

TEST_F(RehearsalTest, InvalidImageFailsItsSkuAndTheRelease) {
  const std::vector<uint8_t> good = Image(0x806f8, 0x2b000650, 0x2b000161);
  Write("r", "06-55-04", {Corrupted(Image(0x50654, 0x2007006, 0x2006b06))});
  std::string dir = Write("r", "06-8f-08", {good, Corrupted(Image(0x806f8, 0x2b000660, 0x2b000161))});
  RehearsalReport report = Run(dir, kSpr);
  EXPECT_FALSE(report.ok());
  EXPECT_THAT(report.skus[0].failures,
              ElementsAre(StartsWith(absl::StrFormat("validation: 06-8f-08@0x%x: data checksum",
                                                     good.size()))));
  const std::vector<std::string> failures = report.Failures();
  ASSERT_EQ(failures.size(), 2u);
  EXPECT_THAT(failures[0], StartsWith("spr: validation: 06-8f-08@"));
  EXPECT_THAT(failures[1], StartsWith("release: validation: 06-55-04@0x0: data checksum"));
}

TEST_F(RehearsalTest, Downgrade) {
  RehearsalReport report = Run(Write("r", "06-8f-08", {Image(0x806f8, 0x2b000600, 0x2b000161)}), kSpr);
  EXPECT_THAT(report.Failures(),
              ElementsAre("spr: downgrade: the release's newest image for this SKU, 06-8f-08@0x0, "
                          "is revision 0x2b000600, older than the running 0x2b000620"));
}

TEST_F(RehearsalTest, MinRevRuleRefusesTheRunningRevision) {
  RehearsalReport report = Run(Write("r", "06-8f-08", {Image(0x806f8, 0x2b000650, 0x2b000161)}),
                               "spr 0x806f8 7 0x2b000100 1x2x2");
  const SkuResult& r = report.skus[0];
  EXPECT_EQ(r.min_rev, "refused");
  EXPECT_THAT(r.failures, ElementsAre("min-rev: 0x2b000100 -> 0x2b000650 refused, unsafe for late "
                                      "load: current revision 0x2b000100 below min_rev 0x2b000161 "
                                      "(load early instead)"));
  EXPECT_TRUE(r.window_unstaged.has_value());  // still modelled, for the table
}

TEST_F(RehearsalTest, UnstagedWindowMustFitTheDeadline) {
  // 16 KiB: about 0.66 ms staged, 0.77 ms unstaged. Staging is opportunistic, so a deadline
  // only the staged window meets is a failure.
  RehearsalReport report = Run(Write("r", "06-8f-08", {Image(0x806f8, 0x2b000650, 0x2b000161)}),
                               "spr 0x806f8 7 0x2b000620 1x2x2 deadline=700us");
  EXPECT_THAT(report.skus[0].failures,
              ElementsAre(HasSubstr("deadline: unstaged activation window 772us exceeds the VM "
                                    "dead-man deadline 700us (staged 656.8us")));
}

TEST_F(RehearsalTest, SkuLosesTheUpdateItHadInTheBaseline) {
  std::string before = Write("before", "06-8f-08", {Image(0x806f8, 0x2b000650, 0x2b000161)});
  std::string after = Write("after", "06-8f-08", {Image(0x806f8, 0x2b000620, 0x2b000161)});
  RehearsalReport report = Run(after, kSpr, before);
  EXPECT_THAT(report.Failures(),
              ElementsAre("spr: lost update: the baseline release updates this SKU to 0x2b000650 "
                          "(06-8f-08@0x0), this release has nothing newer than the running "
                          "0x2b000620"));
  // The same baseline against a release that still updates the SKU: fine.
  EXPECT_TRUE(Run(before, kSpr, before).ok());
}

TEST_F(RehearsalTest, ExpectedFailureNamesWhatItSaw) {
  std::string dir = Write("r", "06-8f-08", {Image(0x806f8, 0x2b000650, 0x2b000161)});
  RehearsalReport failing = Run(dir, "spr 0x806f8 7 0x2b000100 1x2x2");
  absl::StatusOr<std::string> seen = FindExpectedFailure(failing, "below min_rev 0x2b000161");
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_THAT(*seen, StartsWith("spr: min-rev:"));
  EXPECT_THAT(std::string(FindExpectedFailure(failing, "deadline").status().message()),
              HasSubstr("no failure above contains it"));
  RehearsalReport passing = Run(dir, kSpr);
  EXPECT_THAT(std::string(FindExpectedFailure(passing, "min-rev").status().message()),
              HasSubstr("the rehearsal passed"));
}

TEST_F(RehearsalTest, TableAndJson) {
  std::string dir = Write("r", "06-8f-08", {Image(0x806f8, 0x2b000650, 0x2b000161)});
  RehearsalReport report = Run(dir, "spr 0x806f8 7 0x2b000100 1x2x2 hosts=12");
  const std::string table = ReportTable(report);
  EXPECT_THAT(table, HasSubstr("SKU  hosts  shape  image         revision"));
  EXPECT_THAT(table, HasSubstr("spr  12     1x2x2  06-8f-08@0x0  0x2b000100 -> 0x2b000650  primary"));
  EXPECT_THAT(table, HasSubstr("\nFAIL spr: min-rev: "));
  EXPECT_THAT(table, HasSubstr("rehearsal: 0 of 1 SKUs pass, 0 invalid images: FAIL"));
  const std::string json = ReportJson(report);
  EXPECT_THAT(json, StartsWith("{\"ok\":false,"));
  EXPECT_THAT(json, HasSubstr("\"sku\":\"spr\",\"line\":1,\"signature\":\"0x000806f8\""));
  EXPECT_THAT(json, HasSubstr("\"hosts\":12"));
  EXPECT_THAT(json, HasSubstr("\"image\":\"06-8f-08@0x0\""));
  EXPECT_THAT(json, Not(HasSubstr("deadline_us")));  // the fleet file gives none
  EXPECT_THAT(json, HasSubstr("\"invalid_images\":[]}"));
}

}  // namespace
}  // namespace ucode::rehearsal
