// Recursive-descent JSON parser with hard limits (see json.h). Recursion depth
// is bounded by Limits::max_depth, so hostile nesting cannot exhaust the stack.
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "guest-agent/json.h"
#include "guest-agent/utf8.h"

namespace ucode_agent::json {
namespace {

class Parser {
 public:
  Parser(std::string_view text, const Limits& limits) : s_(text), limits_(limits) {}

  std::optional<Value> ParseDocument(ParseError* error) {
    std::optional<Value> v;
    SkipSpace();
    if (ParseValue(0, &v)) {
      SkipSpace();
      if (pos_ != s_.size()) Fail("unexpected data after the JSON value");
    }
    if (!failed_) return v;
    if (error != nullptr) {
      error->offset = pos_;
      error->message = message_;
    }
    return std::nullopt;
  }

 private:
  bool Fail(const char* message) {
    if (!failed_) {
      failed_ = true;
      message_ = message;
    }
    return false;
  }

  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return Fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool CountNode() {
    if (++nodes_ > limits_.max_nodes) return Fail("too many values in document");
    return true;
  }

  bool ParseValue(size_t depth, std::optional<Value>* out) {
    if (!CountNode()) return false;
    if (pos_ >= s_.size()) return Fail("unexpected end of input");
    switch (s_[pos_]) {
      case '{':
        return ParseObject(depth + 1, out);
      case '[':
        return ParseArray(depth + 1, out);
      case '"': {
        std::string str;
        if (!ParseString(&str)) return false;
        out->emplace(std::move(str));
        return true;
      }
      case 't':
        if (!Literal("true")) return false;
        out->emplace(true);
        return true;
      case 'f':
        if (!Literal("false")) return false;
        out->emplace(false);
        return true;
      case 'n':
        if (!Literal("null")) return false;
        out->emplace(nullptr);
        return true;
      default:
        return ParseNumber(out);
    }
  }

  bool ParseObject(size_t depth, std::optional<Value>* out) {
    if (depth > limits_.max_depth) return Fail("nesting too deep");
    ++pos_;  // '{'
    Object obj;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out->emplace(std::move(obj));
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a string key");
      std::string key;
      if (!ParseString(&key)) return false;
      for (const Member& m : obj) {
        if (m.key == key) return Fail("duplicate object key");
      }
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      SkipSpace();
      std::optional<Value> v;
      if (!ParseValue(depth, &v)) return false;
      if (obj.size() >= limits_.max_members) return Fail("too many object members");
      obj.push_back(Member{std::move(key), std::move(*v)});
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end of input in object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        out->emplace(std::move(obj));
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

  bool ParseArray(size_t depth, std::optional<Value>* out) {
    if (depth > limits_.max_depth) return Fail("nesting too deep");
    ++pos_;  // '['
    Array arr;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      out->emplace(std::move(arr));
      return true;
    }
    while (true) {
      SkipSpace();
      std::optional<Value> v;
      if (!ParseValue(depth, &v)) return false;
      if (arr.size() >= limits_.max_members) return Fail("too many array elements");
      arr.push_back(std::move(*v));
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end of input in array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        out->emplace(std::move(arr));
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool ParseHex4(uint32_t* out) {
    if (s_.size() - pos_ < 4) return Fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return Fail("invalid hex digit in \\u escape");
      }
    }
    *out = v;
    return true;
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool ParseEscape(std::string* out) {
    if (pos_ >= s_.size()) return Fail("unterminated string");
    char c = s_[pos_++];
    switch (c) {
      case '"':
        out->push_back('"');
        return true;
      case '\\':
        out->push_back('\\');
        return true;
      case '/':
        out->push_back('/');
        return true;
      case 'b':
        out->push_back('\b');
        return true;
      case 'f':
        out->push_back('\f');
        return true;
      case 'n':
        out->push_back('\n');
        return true;
      case 'r':
        out->push_back('\r');
        return true;
      case 't':
        out->push_back('\t');
        return true;
      case 'u':
        break;
      default:
        return Fail("invalid escape");
    }
    uint32_t cp = 0;
    if (!ParseHex4(&cp)) return false;
    if (cp == 0) return Fail("\\u0000 is not accepted");
    if (cp >= 0xDC00 && cp <= 0xDFFF) return Fail("unpaired low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // RFC 8259 section 7: characters outside the BMP are a surrogate pair.
      if (s_.substr(pos_, 2) != "\\u") return Fail("unpaired high surrogate");
      pos_ += 2;
      uint32_t low = 0;
      if (!ParseHex4(&low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return Fail("invalid low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(cp, out);
    return true;
  }

  // Validates one raw multi-byte UTF-8 sequence starting at pos_ and copies it.
  bool CopyUtf8(std::string* out) {
    const int len = Utf8SequenceLength(s_, pos_);
    if (len == kUtf8Truncated) return Fail("truncated UTF-8");
    if (len == kUtf8Invalid) return Fail("invalid UTF-8");
    out->append(s_.substr(pos_, len));
    pos_ += len;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // '"'
    while (true) {
      if (out->size() > limits_.max_string_bytes) return Fail("string too long");
      if (pos_ >= s_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("control character in string");
      if (c == '\\') {
        ++pos_;
        if (!ParseEscape(out)) return false;
      } else if (c < 0x80) {
        out->push_back(static_cast<char>(c));
        ++pos_;
      } else if (!CopyUtf8(out)) {
        return false;
      }
    }
  }

  bool ParseNumber(std::optional<Value>* out) {
    // Grammar of RFC 8259 section 6, checked before conversion so strtod never
    // sees anything it would accept but JSON does not ("0x1", "inf", "+1").
    size_t start = pos_;
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size()) return Fail("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (s_[pos_] >= '1' && s_[pos_] <= '9') {
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    } else {
      return Fail("invalid value");
    }
    auto digits = [&]() {
      size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > d;
    };
    if (pos_ < s_.size() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digits()) return Fail("invalid number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("invalid number");
    }
    size_t len = pos_ - start;
    if (len > 64) return Fail("number too long");
    char buf[72];
    std::memcpy(buf, s_.data() + start, len);
    buf[len] = '\0';
    if (integral) {
      errno = 0;
      char* end = nullptr;
      long long v = std::strtoll(buf, &end, 10);
      if (errno == 0 && end == buf + len) {
        out->emplace(static_cast<int64_t>(v));
        return true;
      }
    }
    double d = std::strtod(buf, nullptr);
    if (!std::isfinite(d)) return Fail("number out of range");
    out->emplace(d);
    return true;
  }

  std::string_view s_;
  const Limits& limits_;
  size_t pos_ = 0;
  size_t nodes_ = 0;
  bool failed_ = false;
  std::string message_;
};

}  // namespace

const Value* Value::Find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const Member& m : as_object()) {
    if (m.key == key) return &m.value;
  }
  return nullptr;
}

Value& Value::Set(std::string key, Value value) {
  Object& obj = as_object();
  for (Member& m : obj) {
    if (m.key == key) {
      m.value = std::move(value);
      return m.value;
    }
  }
  obj.push_back(Member{std::move(key), std::move(value)});
  return obj.back().value;
}

bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

std::optional<Value> Parse(std::string_view text, const Limits& limits, ParseError* error) {
  return Parser(text, limits).ParseDocument(error);
}

}  // namespace ucode_agent::json
