// Compact JSON writer. Output is always valid JSON and valid UTF-8, whatever
// bytes the strings hold (hook output is arbitrary), so the host's parser
// (libvirt's, QEMU's) never chokes on a reply.
#include <cmath>
#include <cstdio>

#include "guest-agent/json.h"
#include "guest-agent/utf8.h"

namespace ucode_agent::json {
namespace {

void WriteString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const int len = Utf8SequenceLength(s, i);
      if (len <= 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(s.substr(i, len));
        i += len;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

void Write(const Value& v, std::string* out) {
  switch (v.type()) {
    case Value::Type::kNull:
      out->append("null");
      return;
    case Value::Type::kBool:
      out->append(v.as_bool() ? "true" : "false");
      return;
    case Value::Type::kInt:
      out->append(std::to_string(v.as_int()));
      return;
    case Value::Type::kDouble: {
      if (!std::isfinite(v.as_double())) {
        out->append("null");  // JSON has no NaN/Infinity
        return;
      }
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", v.as_double());
      out->append(buf);
      return;
    }
    case Value::Type::kString:
      WriteString(v.as_string(), out);
      return;
    case Value::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Value& e : v.as_array()) {
        if (!first) out->push_back(',');
        first = false;
        Write(e, out);
      }
      out->push_back(']');
      return;
    }
    case Value::Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const Member& m : v.as_object()) {
        if (!first) out->push_back(',');
        first = false;
        WriteString(m.key, out);
        out->push_back(':');
        Write(m.value, out);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

std::string Serialize(const Value& value) {
  std::string out;
  Write(value, &out);
  return out;
}

}  // namespace ucode_agent::json
