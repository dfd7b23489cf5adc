#include "host/rehearsal/fleet.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ucode::rehearsal {
namespace {

using ::testing::HasSubstr;

TEST(Fleet, ParsesFieldsOptionsAndComments) {
  absl::StatusOr<std::vector<FleetSku>> fleet = ParseFleet(
      "# inventory\n"
      "\n"
      "spr-e5  0x806f8 7 0x2b000620 2x56x2  hosts=1500 deadline=50ms  # main SKU\n"
      "gnr.ap\t0xa06d1\t0\t0x10003d0\t2x128x2\n");
  ASSERT_TRUE(fleet.ok()) << fleet.status();
  ASSERT_EQ(fleet->size(), 2u);
  const FleetSku& spr = (*fleet)[0];
  EXPECT_EQ(spr.name, "spr-e5");
  EXPECT_EQ(spr.cpu.signature, 0x806f8u);
  EXPECT_EQ(spr.cpu.platform_id, 7u);
  EXPECT_EQ(spr.cpu.current_revision, 0x2b000620u);
  EXPECT_EQ(spr.Shape(), "2x56x2");
  EXPECT_EQ(spr.hosts, 1500);
  EXPECT_EQ(spr.deadline, absl::Milliseconds(50));
  EXPECT_EQ(spr.line, 3);
  const FleetSku& gnr = (*fleet)[1];
  EXPECT_EQ(gnr.Shape(), "2x128x2");
  EXPECT_FALSE(gnr.hosts.has_value());
  EXPECT_FALSE(gnr.deadline.has_value());
}

TEST(Fleet, RefusesBadLinesNamingLineAndValue) {
  const std::string ok = "a 0x806f8 7 0x2b000620 1x2x2";
  struct Case {
    std::string text;
    std::string error;
  } cases[] = {
      {"a 0x806f8 7 0x2b000620", "fleet line 1: 4 fields"},
      {"a 0x806f8 7 0x2b000620 1x2x2 hosts=1 deadline=1ms x=1", "8 fields"},
      {"a zz 7 0x2b000620 1x2x2", "signature: 'zz' is not a number"},
      {"a 0x1806f8ff0 7 0x2b000620 1x2x2", "does not fit 32 bits"},
      {"a 0x806f8 8 0x2b000620 1x2x2", "platform_id 8 > 7"},
      {"a 0x806f8 7 0x2b000620 1x2", "shape '1x2' is not PACKAGESxCORESxTHREADS"},
      {"a 0x806f8 7 0x2b000620 0x2x2", "shape '0x2x2': 0 out of range"},
      {"a 0x806f8 7 0x2b000620 64x64x2", "8192 logical CPUs, above the rehearsal's 2048"},
      {"a 0x806f8 7 0x2b000620 1x2x2 deadline=soon", "deadline 'soon' is not a duration"},
      {"a 0x806f8 7 0x2b000620 1x2x2 deadline=-1ms", "is not a duration"},
      {"a 0x806f8 7 0x2b000620 1x2x2 hosts=0", "hosts 0 outside"},
      {"a 0x806f8 7 0x2b000620 1x2x2 hosts=1 hosts=2", "each at most once"},
      {"a 0x806f8 7 0x2b000620 1x2x2 speed=fast", "field 'speed=fast'"},
      {"a/b 0x806f8 7 0x2b000620 1x2x2", "SKU name 'a/b'"},
      {ok + "\n" + ok, "fleet line 2: SKU 'a' named twice"},
      {"# nothing\n", "no SKU line"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<FleetSku>> fleet = ParseFleet(c.text);
    ASSERT_FALSE(fleet.ok()) << c.text;
    EXPECT_EQ(fleet.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(std::string(fleet.status().message()), HasSubstr(c.error)) << c.text;
  }
}

TEST(Fleet, RefusesMoreThanTheSkuLimit) {
  std::string text;
  for (size_t i = 0; i <= kMaxSkus; ++i) absl::StrAppend(&text, "s", i, " 0x806f8 7 0x1 1x1x1\n");
  absl::StatusOr<std::vector<FleetSku>> fleet = ParseFleet(text);
  ASSERT_FALSE(fleet.ok());
  EXPECT_THAT(std::string(fleet.status().message()), HasSubstr("more than 1024 SKUs"));
}

TEST(Fleet, LoadNamesThePath) {
  absl::StatusOr<std::vector<FleetSku>> fleet = LoadFleet("/nonexistent/fleet.txt");
  ASSERT_FALSE(fleet.ok());
  EXPECT_THAT(std::string(fleet.status().message()), HasSubstr("/nonexistent/fleet.txt"));
}

}  // namespace
}  // namespace ucode::rehearsal
