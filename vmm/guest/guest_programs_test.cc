#include "vmm/guest/guest_programs.h"

#include "gtest/gtest.h"

namespace ucode::guest {
namespace {

TEST(GuestProgramsTest, EveryProgramIsEmbeddedAndStartsWithCode) {
  for (absl::string_view name : GuestProgramNames()) {
    auto p = FindGuestProgram(name);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_GT(p->code.size(), 4u) << name;
  }
  // cli-spin begins with CLI (0xFA); spin does not.
  EXPECT_EQ(FindGuestProgram("cli-spin")->code[0], 0xFA);
  EXPECT_NE(FindGuestProgram("spin")->code[0], 0xFA);
}

TEST(GuestProgramsTest, UnknownNameListsTheKnownOnes) {
  auto p = FindGuestProgram("nope");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("cli-spin"), std::string::npos);
}

}  // namespace
}  // namespace ucode::guest
