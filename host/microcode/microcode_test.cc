// Unit tests for parsing, selection and generation; the corruption table lives in
// corruption_test.cc.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/microcode/checksum.h"
#include "host/microcode/image_generator.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"
#include "host/microcode/selection.h"

namespace ucode::microcode {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::vector<uint8_t> Generate(const GeneratorOptions& o) {
  absl::StatusOr<std::vector<uint8_t>> bytes = GenerateImage(o);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::vector<uint8_t>{};
}

MicrocodeImage Parse(const std::vector<uint8_t>& bytes) {
  absl::StatusOr<MicrocodeImage> image = ParseImage(bytes);
  EXPECT_TRUE(image.ok()) << image.status();
  return image.ok() ? *image : MicrocodeImage{};
}

TEST(ChecksumTest, SumsLittleEndianDwordsAtAnyAlignment) {
  std::vector<uint8_t> buf(67, 0);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t start = 0; start < 4; ++start) {
    absl::Span<const uint8_t> s = absl::Span<const uint8_t>(buf).subspan(start);
    uint32_t expected = 0;
    for (size_t i = 0; i + 4 <= s.size(); i += 4) {
      expected += uint32_t{s[i]} | uint32_t{s[i + 1]} << 8 | uint32_t{s[i + 2]} << 16 |
                  uint32_t{s[i + 3]} << 24;
    }
    EXPECT_EQ(SumDwords(s), expected) << "start " << start;
  }
  EXPECT_EQ(SumDwords({}), 0u);
}

TEST(GeneratorTest, DefaultImageParsesWithItsFields) {
  GeneratorOptions o;
  std::vector<uint8_t> bytes = Generate(o);
  ASSERT_EQ(bytes.size(), 16u * 1024);
  MicrocodeImage image = Parse(bytes);
  EXPECT_EQ(image.header.signature, o.signature);
  EXPECT_EQ(image.header.platform_flags, o.platform_flags);
  EXPECT_EQ(image.revision(), o.revision);
  EXPECT_EQ(image.header.min_req_revision, o.min_req_revision);
  EXPECT_EQ(image.total_size(), bytes.size());
  EXPECT_EQ(image.data_size(), bytes.size() - kHeaderSize);
  EXPECT_EQ(image.DateString(), "2025-11-11");
  EXPECT_TRUE(image.extended_signatures.empty());
}

TEST(GeneratorTest, ExtendedSignaturesGetValidChecksums) {
  std::vector<uint8_t> bytes = Generate(
      {.data_size = 5000,
       .extended_signatures = {{0x806f7, 0x87, 0}, {0x806f6, 0x10, 0}, {0x806f5, 0x01, 0}}});
  EXPECT_EQ(bytes.size() % 1024, 0u);
  MicrocodeImage image = Parse(bytes);
  ASSERT_EQ(image.extended_signatures.size(), 3u);
  EXPECT_EQ(image.extended_signatures[1].signature, 0x806f6u);
  EXPECT_EQ(image.extended_signatures[1].platform_flags, 0x10u);
  EXPECT_EQ(image.data_size() + kHeaderSize + kExtTableHeaderSize + 3 * kExtSignatureSize,
            image.total_size());
}

TEST(GeneratorTest, ExactFitTableStillGetsData) {
  // 48 + 20 + 165*12 = 2048: without care the data size would be 0, i.e. "legacy".
  MicrocodeImage image = Parse(Generate(
      {.data_size = 0,
       .extended_signatures = std::vector<ExtendedSignature>(165, {0x1234, 1, 0})}));
  EXPECT_NE(image.header.data_size, 0u);
  EXPECT_EQ(image.extended_signatures.size(), 165u);
}

TEST(GeneratorTest, LegacyLayoutUsesTheDefaults) {
  std::vector<uint8_t> bytes = Generate({.legacy_layout = true});
  ASSERT_EQ(bytes.size(), kDefaultTotalSize);
  MicrocodeImage image = Parse(bytes);
  EXPECT_EQ(image.header.data_size, 0u);
  EXPECT_EQ(image.data_size(), kDefaultDataSize);
  EXPECT_EQ(image.total_size(), kDefaultTotalSize);
}

TEST(GeneratorTest, RefusesImpossibleOptions) {
  GeneratorOptions o;
  o.data_size = 1001;
  EXPECT_EQ(GenerateImage(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.data_size = size_t{1} << 33;
  EXPECT_EQ(GenerateImage(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseTest, LegacyImageIgnoresTotalSizeField) {
  // The kernel's get_totalsize() uses 2048 whenever datasize is 0, whatever totalsize says.
  std::vector<uint8_t> bytes = Generate({.legacy_layout = true});
  StoreLe32(absl::MakeSpan(bytes), 32, 0x12345678);
  StoreLe32(absl::MakeSpan(bytes), 16, LoadLe32(bytes, 16) - 0x12345678);
  EXPECT_EQ(Parse(bytes).total_size(), kDefaultTotalSize);
}

TEST(BundleTest, ParsesEveryMemberWithOffsets) {
  std::vector<uint8_t> bundle;
  for (uint32_t rev : {1u, 2u, 3u}) {
    // Sizes differ.
    std::vector<uint8_t> one = Generate({.revision = rev, .data_size = rev * 1500});
    bundle.insert(bundle.end(), one.begin(), one.end());
  }
  absl::StatusOr<std::vector<MicrocodeImage>> images = ParseBundleStrict(bundle);
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 3u);
  EXPECT_EQ((*images)[0].offset, 0u);
  EXPECT_EQ((*images)[1].offset, (*images)[0].total_size());
  EXPECT_EQ((*images)[2].revision(), 3u);
  EXPECT_EQ((*images)[2].offset + (*images)[2].total_size(), bundle.size());
}

TEST(BundleTest, KeepsGoingPastAMemberWithTrustworthySize) {
  std::vector<uint8_t> bundle;
  for (int i = 0; i < 3; ++i) {
    std::vector<uint8_t> one = Generate(GeneratorOptions{});
    if (i == 1) one[100] ^= 1;
    bundle.insert(bundle.end(), one.begin(), one.end());
  }
  std::vector<BundleEntry> entries = ParseBundle(bundle);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_TRUE(entries[0].image.ok());
  EXPECT_THAT(std::string(entries[1].image.status().message()), StartsWith("data checksum"));
  EXPECT_TRUE(entries[2].image.ok());
  absl::Status strict = ParseBundleStrict(bundle).status();
  EXPECT_THAT(std::string(strict.message()), StartsWith("image at offset 0x4000: data checksum"));
}

TEST(BundleTest, EmptyInputIsAnError) {
  EXPECT_TRUE(ParseBundle({}).empty());
  EXPECT_FALSE(ParseBundleStrict({}).ok());
}

TEST(RealReleaseTest, EveryFileParsesStrictly) {
  absl::StatusOr<std::string> dir = FindReleaseDir();
  if (!dir.ok()) GTEST_SKIP() << dir.status();
  absl::StatusOr<std::vector<std::string>> files = ListFiles(*dir);
  ASSERT_TRUE(files.ok()) << files.status();
  ASSERT_GT(files->size(), 100u);
  size_t images = 0;
  for (const std::string& path : *files) {
    absl::StatusOr<std::vector<uint8_t>> bytes = ReadFileBytes(path);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    absl::StatusOr<std::vector<MicrocodeImage>> parsed = ParseBundleStrict(*bytes);
    ASSERT_TRUE(parsed.ok()) << path << ": " << parsed.status();
    for (const MicrocodeImage& image : *parsed) {
      // Linux names the file after the primary signature (or one extended one).
      bool named = FirmwareFileName(image.header.signature) == path.substr(path.size() - 8);
      for (const ExtendedSignature& e : image.extended_signatures) {
        named |= FirmwareFileName(e.signature) == path.substr(path.size() - 8);
      }
      EXPECT_TRUE(named) << path << " holds 0x" << std::hex << image.header.signature;
    }
    images += parsed->size();
  }
  EXPECT_GT(images, files->size());
}

TEST(RealReleaseTest, SapphireRapidsFileHasTwoImagesWithExtendedTables) {
  absl::StatusOr<std::string> dir = FindReleaseDir();
  if (!dir.ok()) GTEST_SKIP() << dir.status();
  absl::StatusOr<std::vector<uint8_t>> bytes = ReadFileBytes(*dir + "/06-8f-08");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::vector<MicrocodeImage>> images = ParseBundleStrict(*bytes);
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].header.signature, 0x806f8u);
  EXPECT_EQ((*images)[0].header.platform_flags, 0x10u);
  EXPECT_EQ((*images)[0].extended_signatures.size(), 4u);
  EXPECT_EQ((*images)[1].header.platform_flags, 0x87u);
  EXPECT_EQ((*images)[1].extended_signatures.size(), 5u);
  EXPECT_EQ((*images)[1].revision(), 0x2b000650u);
  EXPECT_EQ((*images)[1].DateString(), "2025-05-29");
}

TEST(ReadFileTest, ReportsMissingAndOversizedFiles) {
  EXPECT_EQ(ReadFileBytes("/nonexistent/ucode").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadFileBytes("/").status().code(), absl::StatusCode::kInvalidArgument);
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string path = std::string(tmp ? tmp : "/tmp") + "/read_file_test.bin";
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fputs("0123456789", f);
  std::fclose(f);
  EXPECT_EQ(ReadFileBytes(path, 9).status().code(), absl::StatusCode::kResourceExhausted);
  absl::StatusOr<std::vector<uint8_t>> ten = ReadFileBytes(path, 10);
  ASSERT_TRUE(ten.ok()) << ten.status();
  EXPECT_EQ(ten->size(), 10u);
}

TEST(FirmwareFileNameTest, MatchesLinuxNames) {
  EXPECT_EQ(FirmwareFileName(0x000806f8), "06-8f-08");
  EXPECT_EQ(FirmwareFileName(0x000906ea), "06-9e-0a");
  EXPECT_EQ(FirmwareFileName(0x00000f29), "0f-02-09");
  EXPECT_EQ(FirmwareFileName(0x00000632), "06-03-02");
  EXPECT_EQ(FirmwareFileName(0x00b06f2), "06-bf-02");
}

// ---- Selection -------------------------------------------------------------------------

MicrocodeImage Img(uint32_t sig, uint32_t pf, uint32_t rev, uint32_t min_rev = 1,
                   std::vector<ExtendedSignature> ext = {}) {
  MicrocodeImage m{};
  m.header.signature = sig;
  m.header.platform_flags = pf;
  m.header.revision = rev;
  m.header.min_req_revision = min_rev;
  m.extended_signatures = std::move(ext);
  return m;
}

TEST(SelectionTest, SignatureMatchFollowsTheKernel) {
  CpuIdentity cpu{0x806f8, 4, 0};
  EXPECT_TRUE(SignatureMatches(0x806f8, 0x10, cpu));
  EXPECT_TRUE(SignatureMatches(0x806f8, 0xff, cpu));
  EXPECT_FALSE(SignatureMatches(0x806f8, 0x87, cpu));
  EXPECT_FALSE(SignatureMatches(0x806f7, 0x10, cpu));
  CpuIdentity old_cpu{0x632, kNoPlatformId, 0};
  EXPECT_TRUE(SignatureMatches(0x632, 0, old_cpu));
  EXPECT_FALSE(SignatureMatches(0x632, 1, old_cpu));
}

TEST(SelectionTest, PicksNewestMatchingAndExplainsTheRest) {
  std::vector<MicrocodeImage> images = {
      Img(0x806f8, 0x87, 0x2b000600),  // older eligible
      Img(0x806f8, 0x10, 0x2c000410),  // pf mismatch
      Img(0x806f8, 0x87, 0x2b000650),  // winner
      Img(0x806f7, 0x87, 0x2b000700),  // signature mismatch
      Img(0x806f8, 0x87, 0x2b000100),  // not newer
  };
  CpuIdentity cpu{0x806f8, 0, 0x2b000200};  // platform id 0 -> mask 0x01
  Selection s = SelectImage(images, cpu, MinRevPolicy::kEnforce);
  ASSERT_EQ(s.image, &images[2]);
  ASSERT_EQ(s.candidates.size(), 5u);
  EXPECT_TRUE(s.candidates[2].selected);
  EXPECT_THAT(s.candidates[2].reason, StartsWith("selected: matches primary signature"));
  EXPECT_THAT(s.candidates[0].reason, HasSubstr("superseded by image 2 revision 0x2b000650"));
  EXPECT_THAT(s.candidates[1].reason, HasSubstr("does not match"));
  EXPECT_THAT(s.candidates[3].reason, HasSubstr("does not match"));
  EXPECT_THAT(s.candidates[4].reason, HasSubstr("not newer than current 0x2b000200"));
  EXPECT_EQ(s.candidates[0].verdict, Verdict::kSuperseded);
  EXPECT_EQ(s.candidates[1].verdict, Verdict::kNoMatch);
  EXPECT_EQ(s.candidates[2].verdict, Verdict::kSelected);
  EXPECT_EQ(s.candidates[3].verdict, Verdict::kNoMatch);
  EXPECT_EQ(s.candidates[4].verdict, Verdict::kNotNewer);
}

TEST(SelectionTest, MatchesThroughExtendedSignature) {
  std::vector<MicrocodeImage> images = {
      Img(0x806f8, 0x87, 0x2b000650, 1, {{0x806f4, 0x10, 0}, {0x806f5, 0x87, 0}})};
  Selection s = SelectImage(images, CpuIdentity{0x806f5, 7, 0x2b000001}, MinRevPolicy::kEnforce);
  ASSERT_NE(s.image, nullptr);
  EXPECT_THAT(s.candidates[0].reason, HasSubstr("extended signature 1"));
}

TEST(SelectionTest, RevisionsCompareUnsignedAsTheKernel) {
  // The kernel compares u32 revisions: a high-bit revision is newer than a low one, so
  // ucode selects what the kernel's reload would load.
  std::vector<MicrocodeImage> images = {Img(0x806f8, 1, 0x80000010)};
  Selection s = SelectImage(images, CpuIdentity{0x806f8, 0, 0x10}, MinRevPolicy::kIgnore);
  EXPECT_EQ(s.image, &images[0]);
  images = {Img(0x806f8, 1, 0x10, 0x10)};
  s = SelectImage(images, CpuIdentity{0x806f8, 0, 0x80000010}, MinRevPolicy::kEnforce);
  EXPECT_EQ(s.image, nullptr);
  EXPECT_THAT(s.candidates[0].reason, HasSubstr("not newer"));
  EXPECT_TRUE(IsNewerRevision(0x80000000u, 0x7fffffffu));
}

TEST(SelectionTest, MinRevRuleHonoursThePolicy) {
  std::vector<MicrocodeImage> images = {Img(0x806f8, 1, 0x30, /*min_rev=*/0),
                                        Img(0x806f8, 1, 0x20, /*min_rev=*/0x15)};
  CpuIdentity cpu{0x806f8, 0, 0x10};
  Selection enforce = SelectImage(images, cpu, MinRevPolicy::kEnforce);
  EXPECT_EQ(enforce.image, nullptr);
  EXPECT_THAT(enforce.candidates[0].reason, HasSubstr("min_rev 0"));
  EXPECT_THAT(enforce.candidates[1].reason, HasSubstr("current revision 0x10 below min_rev 0x15"));
  EXPECT_EQ(enforce.candidates[1].verdict, Verdict::kMinRevUnsafe);
  Selection force = SelectImage(images, cpu, MinRevPolicy::kIgnore);
  ASSERT_EQ(force.image, &images[0]);
  EXPECT_THAT(force.candidates[0].reason, HasSubstr("min-rev rule ignored: min_rev 0"));
  EXPECT_THAT(force.candidates[1].reason, HasSubstr("superseded"));
  // At or above min_rev is safe.
  cpu.current_revision = 0x15;
  EXPECT_EQ(SelectImage(images, cpu, MinRevPolicy::kEnforce).image, &images[1]);
}

TEST(SelectionTest, EqualRevisionsKeepTheFirst) {
  std::vector<MicrocodeImage> images = {Img(0x806f8, 1, 0x30), Img(0x806f8, 3, 0x30)};
  Selection s = SelectImage(images, CpuIdentity{0x806f8, 0, 0x10}, MinRevPolicy::kEnforce);
  EXPECT_EQ(s.image, &images[0]);
}

TEST(SelectionTest, EmptyInputSelectsNothing) {
  Selection s = SelectImage({}, CpuIdentity{}, MinRevPolicy::kEnforce);
  EXPECT_EQ(s.image, nullptr);
  EXPECT_TRUE(s.candidates.empty());
}

}  // namespace
}  // namespace ucode::microcode
