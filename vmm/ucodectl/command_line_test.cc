#include "vmm/ucodectl/command_line.h"

#include "gtest/gtest.h"

namespace ucode::ctl {
namespace {

const std::vector<OptionSpec> kSpecs = {
    {.name = "json", .takes_value = false, .help = "JSON output"},
    {.name = "cpu", .takes_value = true, .help = "CPU"},
    {.name = "domain", .takes_value = true, .repeatable = true, .help = "domain"},
    {.name = "connect", .takes_value = true, .help = "URI", .short_name = 'c'},
};

TEST(ParseArgs, OptionsAndPositionals) {
  auto p = ParseArgs({"a", "--json", "--cpu=0x806f8", "-c", "qemu:///system", "--domain", "x",
                      "--domain", "y", "b"},
                     kSpecs);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->Has("json"));
  EXPECT_EQ(p->ValueOr("cpu", ""), "0x806f8");
  EXPECT_EQ(p->ValueOr("connect", ""), "qemu:///system");
  EXPECT_EQ(p->Values("domain"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(p->positional(), (std::vector<std::string>{"a", "b"}));
}

TEST(ParseArgs, RejectsWithTheOptionNamed) {
  EXPECT_EQ(ParseArgs({"--bogus"}, kSpecs).status().message(), "unknown option --bogus");
  EXPECT_EQ(ParseArgs({"--cpu"}, kSpecs).status().message(), "option --cpu needs a value");
  EXPECT_EQ(ParseArgs({"--json=1"}, kSpecs).status().message(), "option --json takes no value");
  EXPECT_EQ(ParseArgs({"--cpu", "1", "--cpu", "2"}, kSpecs).status().message(),
            "option --cpu given twice");
}

TEST(ParseArgs, DoubleDashEndsOptions) {
  auto p = ParseArgs({"--", "--json"}, kSpecs);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->Has("json"));
  EXPECT_EQ(p->positional(), (std::vector<std::string>{"--json"}));
}

// ucodectl's global options: the subcommand's own words are left as they are.
TEST(ParseArgs, StopAtPositionalLeavesTheRestUnparsed) {
  auto p = ParseArgs({"-c", "qemu:///system", "apply", "--json", "--bogus"}, kSpecs, true);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->ValueOr("connect", ""), "qemu:///system");
  EXPECT_FALSE(p->Has("json"));
  EXPECT_EQ(p->positional(), (std::vector<std::string>{"apply", "--json", "--bogus"}));
}

}  // namespace
}  // namespace ucode::ctl
