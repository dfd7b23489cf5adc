#include "guest-agent/session.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "guest-agent/commands.h"

namespace ucode_agent {
namespace {

class SessionTest : public ::testing::Test {
 protected:
  SessionTest() {
    AddProtocolCommands(&table_, "9.9");
    table_.Add({"echo-args", [](const json::Value& a) { return CommandResult::Ok(a); }, false});
  }

  // Feeds `input` and returns the raw reply bytes.
  std::string Feed(std::string_view input) {
    std::string out;
    session_.Feed(input, &out);
    return out;
  }

  // Feeds `input` and parses every reply line.
  std::vector<json::Value> Replies(std::string_view input) {
    std::string out = Feed(input);
    std::vector<json::Value> replies;
    size_t pos = 0;
    while (pos < out.size()) {
      size_t nl = out.find('\n', pos);
      EXPECT_NE(nl, std::string::npos) << "reply without newline";
      if (nl == std::string::npos) break;
      std::string_view line(out.data() + pos, nl - pos);
      if (!line.empty() && static_cast<unsigned char>(line[0]) == 0xFF) line.remove_prefix(1);
      json::ParseError e;
      auto v = json::Parse(line, json::Limits{}, &e);
      EXPECT_TRUE(v) << line;
      if (v) replies.push_back(*v);
      pos = nl + 1;
    }
    return replies;
  }

  static std::string ErrorClass(const json::Value& reply) {
    const json::Value* e = reply.Find("error");
    return e ? e->Find("class")->as_string() : "";
  }
  static std::string ErrorDesc(const json::Value& reply) {
    const json::Value* e = reply.Find("error");
    return e ? e->Find("desc")->as_string() : "";
  }

  CommandTable table_;
  Session session_{&table_, 1024};
};

// Requests and their exact replies, in order on one session.
TEST_F(SessionTest, ExactReplies) {
  const std::pair<const char*, const char*> exchanges[] = {
      {"{\"execute\":\"guest-sync\", \"arguments\":{\"id\":1730000000123}}\n",
       "{\"return\":1730000000123}\n"},
      // guest-sync-delimited prefixes its reply with the 0xFF sentinel.
      {"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":42}}\n",
       "\xff{\"return\":42}\n"},
      {"{\"execute\":\"guest-ping\"}\n", "{\"return\":{}}\n"},
      {"{\"execute\":\"guest-ping\",\"id\":[\"any\",1]}\r\n",
       "{\"return\":{},\"id\":[\"any\",1]}\n"},  // the id is echoed
      {"\n \r\n\t\n", ""},  // blank lines are ignored
      // A stale half command from a previous client, then the 0xFF flush, then sync.
      {"{\"execute\":\"guest-ping\",\"argu", ""},
      {"\xff{\"execute\":\"guest-sync\",\"arguments\":{\"id\":9}}\n", "{\"return\":9}\n"},
  };
  for (const auto& [request, reply] : exchanges) EXPECT_EQ(Feed(request), reply) << request;
}

TEST_F(SessionTest, GuestSyncDelimitedWithBadArgumentsHasNoSentinel) {
  std::string out = Feed("{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":\"x\"}}\n");
  ASSERT_FALSE(out.empty());
  EXPECT_NE(static_cast<unsigned char>(out[0]), 0xFF);
  auto r = Replies("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":\"x\"}}\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(ErrorClass(r[0]), "GenericError");
  EXPECT_EQ(ErrorDesc(r[0]), "Invalid parameter type for 'id', expected: integer");
}

TEST_F(SessionTest, GuestSyncRequiresId) {
  auto r = Replies("{\"execute\":\"guest-sync\"}\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(ErrorDesc(r[0]), "Parameter 'id' is missing");
}

TEST_F(SessionTest, GuestInfoListsEveryCommand) {
  auto r = Replies("{\"execute\":\"guest-info\"}\n");
  ASSERT_EQ(r.size(), 1u);
  const json::Value* ret = r[0].Find("return");
  ASSERT_NE(ret, nullptr);
  EXPECT_EQ(ret->Find("version")->as_string(), "9.9");
  std::vector<std::string> names;
  for (const json::Value& c : ret->Find("supported_commands")->as_array()) {
    names.push_back(c.Find("name")->as_string());
    EXPECT_TRUE(c.Find("enabled")->as_bool());
    EXPECT_TRUE(c.Find("success-response")->as_bool());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"guest-sync", "guest-sync-delimited", "guest-ping",
                                             "guest-info", "echo-args"}));
}

TEST_F(SessionTest, UnknownCommandIsCommandNotFound) {
  auto r = Replies("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\"}}\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(ErrorClass(r[0]), "CommandNotFound");
  EXPECT_EQ(ErrorDesc(r[0]), "The command guest-exec has not been found");
}

TEST_F(SessionTest, MalformedRequestsGetGenericErrors) {
  struct Case {
    const char* line;
    const char* desc_prefix;
  } cases[] = {
      {"{\"execute\":", "JSON parse error at byte 11"},
      {"[1,2]", "QMP input must be a JSON object"},
      {"{\"arguments\":{}}", "QMP input lacks member 'execute'"},
      {"{\"execute\":7}", "QMP input member 'execute' must be a string"},
      {"{\"execute\":\"guest-ping\",\"arguments\":[]}", "QMP input member 'arguments' must be an object"},
      {"{\"execute\":\"guest-ping\",\"extra\":1}", "QMP input member 'extra' is unexpected"},
      {"{\"execute\":\"guest-ping\",\"arguments\":{\"x\":1}}", "Parameter 'x' is unexpected"},
  };
  for (const Case& c : cases) {
    auto r = Replies(std::string(c.line) + "\n");
    ASSERT_EQ(r.size(), 1u) << c.line;
    EXPECT_EQ(ErrorClass(r[0]), "GenericError") << c.line;
    EXPECT_EQ(ErrorDesc(r[0]).rfind(c.desc_prefix, 0), 0u) << ErrorDesc(r[0]);
  }
}

TEST_F(SessionTest, ArgumentsReachTheHandler) {
  auto r = Replies("{\"execute\":\"echo-args\",\"arguments\":{\"k\":\"v\"},\"id\":3}\n");
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].Find("return")->Find("k")->as_string(), "v");
  EXPECT_EQ(r[0].Find("id")->as_int(), 3);
}

TEST_F(SessionTest, LinesSplitAcrossReads) {
  std::string line = "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":7}}\n";
  std::string out;
  for (char c : line) session_.Feed(std::string_view(&c, 1), &out);
  EXPECT_EQ(out, "{\"return\":7}\n");
  // Two commands in one read.
  EXPECT_EQ(Replies(line + line).size(), 2u);
}

TEST_F(SessionTest, GarbageThenResync) {
  auto r = Replies("\x01\x02garbage}}}\n{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}\n");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(ErrorClass(r[0]), "GenericError");
  EXPECT_EQ(r[1].Find("return")->as_int(), 1);
}

TEST_F(SessionTest, OversizedLineIsRejectedOnceAndDiscarded) {
  std::string big(5000, 'x');  // session limit is 1024 bytes
  std::vector<json::Value> r = Replies(big);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(ErrorDesc(r[0]).rfind("Command line longer than 1024 bytes", 0), 0u);
  // The rest of the oversized line (even if it looks like a command) is dropped.
  EXPECT_EQ(Feed(big + "{\"execute\":\"guest-ping\"}"), "");
  // The next line is processed normally.
  EXPECT_EQ(Feed("\n{\"execute\":\"guest-ping\"}\n"), "{\"return\":{}}\n");
}

TEST_F(SessionTest, OversizedLineEndsAtResyncByte) {
  std::string big(2000, '{');
  ASSERT_EQ(Replies(big).size(), 1u);
  EXPECT_EQ(Feed("\xff{\"execute\":\"guest-ping\"}\n"), "{\"return\":{}}\n");
}

TEST_F(SessionTest, ResetDropsPartialInput) {
  EXPECT_EQ(Feed("{\"execute\":\"gue"), "");
  session_.Reset();
  EXPECT_EQ(Feed("{\"execute\":\"guest-ping\"}\n"), "{\"return\":{}}\n");
}

}  // namespace
}  // namespace ucode_agent
