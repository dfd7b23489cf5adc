#include "guest-agent/json.h"

#include <string>

#include "gtest/gtest.h"

namespace ucode_agent::json {
namespace {

std::optional<Value> P(std::string_view text, Limits limits = {}) {
  ParseError e;
  return Parse(text, limits, &e);
}

std::string Error(std::string_view text, Limits limits = {}) {
  ParseError e;
  EXPECT_FALSE(Parse(text, limits, &e).has_value()) << text;
  return e.message;
}

TEST(JsonTest, ParsesScalarsAndContainers) {
  auto v = P(R"( {"a": [1, -2, 3.5, true, false, null, "x"], "b": {}} )");
  ASSERT_TRUE(v);
  const Value* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->as_array().size(), 7u);
  EXPECT_EQ(a->as_array()[0].as_int(), 1);
  EXPECT_EQ(a->as_array()[1].as_int(), -2);
  EXPECT_DOUBLE_EQ(a->as_array()[2].as_double(), 3.5);
  EXPECT_TRUE(a->as_array()[3].as_bool());
  EXPECT_EQ(a->as_array()[5].type(), Value::Type::kNull);
  EXPECT_EQ(a->as_array()[6].as_string(), "x");
  EXPECT_TRUE(v->Find("b")->is_object());
}

TEST(JsonTest, IntegersStayExactUpToInt64) {
  EXPECT_EQ(P("9223372036854775807")->as_int(), INT64_MAX);
  EXPECT_EQ(P("-9223372036854775808")->as_int(), INT64_MIN);
  EXPECT_EQ(P("9223372036854775808")->type(), Value::Type::kDouble);  // beyond int64
  EXPECT_EQ(P("1e3")->type(), Value::Type::kDouble);
  EXPECT_EQ(P("1730000000123")->as_int(), 1730000000123);  // libvirt's guest-sync id
}

TEST(JsonTest, RejectsNonJsonNumbers) {
  for (const char* bad : {"01", "+1", "0x10", ".5", "1.", "1e", "-", "inf", "NaN", "1e999"}) {
    Error(bad);
  }
}

TEST(JsonTest, DecodesEscapesAndSurrogatePairs) {
  auto v = P(R"("a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00")");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_string(), "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
}

TEST(JsonTest, RejectsBadStrings) {
  EXPECT_EQ(Error(R"("\u0000")"), "\\u0000 is not accepted");
  EXPECT_EQ(Error(R"("\ud83d")"), "unpaired high surrogate");
  EXPECT_EQ(Error(R"("\ude00")"), "unpaired low surrogate");
  EXPECT_EQ(Error("\"a\x01\""), "control character in string");
  EXPECT_EQ(Error("\"\xff\""), "invalid UTF-8");
  EXPECT_EQ(Error("\"\xc0\xaf\""), "invalid UTF-8");          // overlong '/'
  EXPECT_EQ(Error("\"\xed\xa0\x80\""), "invalid UTF-8");      // encoded surrogate
  EXPECT_EQ(Error("\"\xf4\x90\x80\x80\""), "invalid UTF-8");  // above U+10FFFF
  EXPECT_EQ(Error(R"("\q")"), "invalid escape");
  EXPECT_EQ(Error(R"("abc)"), "unterminated string");
}

TEST(JsonTest, RejectsStructuralErrors) {
  EXPECT_EQ(Error(R"({"a":1,"a":2})"), "duplicate object key");
  EXPECT_EQ(Error(R"({"a":1} x)"), "unexpected data after the JSON value");
  EXPECT_EQ(Error(R"({"a" 1})"), "expected ':'");
  EXPECT_EQ(Error(R"({a:1})"), "expected a string key");
  EXPECT_EQ(Error("[1,2"), "unexpected end of input in array");
  EXPECT_EQ(Error("[1,]"), "invalid value");
  EXPECT_EQ(Error(""), "unexpected end of input");
  EXPECT_EQ(Error("tru"), "invalid literal");
}

TEST(JsonTest, DepthLimit) {
  Limits limits;
  limits.max_depth = 4;
  EXPECT_TRUE(P("[[[[1]]]]", limits));
  EXPECT_EQ(Error("[[[[[1]]]]]", limits), "nesting too deep");
  // Far deeper than the default limit: refused, no stack exhaustion.
  std::string deep(100000, '[');
  EXPECT_EQ(Error(deep), "nesting too deep");
}

TEST(JsonTest, StringLengthLimit) {
  Limits limits;
  limits.max_string_bytes = 8;
  EXPECT_TRUE(P(R"("12345678")", limits));
  EXPECT_EQ(Error(R"("123456789")", limits), "string too long");
  EXPECT_EQ(Error(R"({"123456789":1})", limits), "string too long");
}

TEST(JsonTest, MemberAndNodeLimits) {
  Limits limits;
  limits.max_members = 3;
  EXPECT_TRUE(P("[1,2,3]", limits));
  EXPECT_EQ(Error("[1,2,3,4]", limits), "too many array elements");
  EXPECT_EQ(Error(R"({"a":1,"b":2,"c":3,"d":4})", limits), "too many object members");
  limits = {};
  limits.max_nodes = 5;
  EXPECT_TRUE(P("[[1],[2]]", limits));
  EXPECT_EQ(Error("[[1],[2],3]", limits), "too many values in document");
}

TEST(JsonTest, ErrorOffsetPointsAtTheProblem) {
  ParseError e;
  EXPECT_FALSE(Parse(R"({"a": x})", Limits{}, &e));
  EXPECT_EQ(e.offset, 6u);
}

TEST(JsonTest, SerializeRoundTrips) {
  Value v = Object{};
  v.Set("s", "q\"\\\n\x01\xc3\xa9");
  v.Set("i", int64_t{-7});
  v.Set("d", 0.25);
  v.Set("a", Array{true, nullptr, "x"});
  std::string text = Serialize(v);
  EXPECT_EQ(text, R"({"s":"q\"\\\n\u0001)" "\xc3\xa9" R"(","i":-7,"d":0.25,"a":[true,null,"x"]})");
  auto back = P(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, v);
}

TEST(JsonTest, SerializeReplacesInvalidUtf8) {
  EXPECT_EQ(Serialize(Value(std::string("a\xff\xc3"))), R"("a\ufffd\ufffd")");
  EXPECT_TRUE(P(Serialize(Value(std::string("\xed\xa0\x80")))));
}

TEST(JsonTest, SetReplacesExistingMember) {
  Value v = Object{};
  v.Set("k", 1);
  v.Set("k", 2);
  ASSERT_EQ(v.as_object().size(), 1u);
  EXPECT_EQ(v.Find("k")->as_int(), 2);
  EXPECT_EQ(v.Find("missing"), nullptr);
}

}  // namespace
}  // namespace ucode_agent::json
