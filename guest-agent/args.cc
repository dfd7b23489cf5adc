#include "guest-agent/args.h"

namespace ucode_agent {

bool ArgReader::Fail(std::string message) {
  if (error_.empty()) error_ = std::move(message);
  return false;
}

bool ArgReader::OnlyKnown(std::initializer_list<std::string_view> known) {
  for (const json::Member& m : args_.as_object()) {
    bool found = false;
    for (std::string_view k : known) found = found || m.key == k;
    if (!found) return Fail("Parameter '" + m.key + "' is unexpected");
  }
  return true;
}

const json::Value* ArgReader::Get(std::string_view name, bool required, json::Value::Type type,
                                  const char* type_name) {
  const json::Value* v = args_.Find(name);
  if (v == nullptr) {
    if (required) Fail("Parameter '" + std::string(name) + "' is missing");
    return nullptr;
  }
  if (v->type() != type) {
    Fail("Invalid parameter type for '" + std::string(name) + "', expected: " + type_name);
    return nullptr;
  }
  return v;
}

std::optional<int64_t> ArgReader::Int(std::string_view name, bool required, int64_t min,
                                      int64_t max) {
  const json::Value* v = Get(name, required, json::Value::Type::kInt, "integer");
  if (v == nullptr) return std::nullopt;
  if (v->as_int() < min || v->as_int() > max) {
    Fail("Parameter '" + std::string(name) + "' expects a value in [" + std::to_string(min) +
         ", " + std::to_string(max) + "]");
    return std::nullopt;
  }
  return v->as_int();
}

std::optional<std::string> ArgReader::String(std::string_view name, bool required,
                                             size_t max_bytes) {
  const json::Value* v = Get(name, required, json::Value::Type::kString, "string");
  if (v == nullptr) return std::nullopt;
  const std::string& s = v->as_string();
  if (s.size() > max_bytes) {
    Fail("Parameter '" + std::string(name) + "' is longer than " + std::to_string(max_bytes) +
         " bytes");
    return std::nullopt;
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7F) {
      Fail("Parameter '" + std::string(name) + "' contains a control character");
      return std::nullopt;
    }
  }
  return s;
}

}  // namespace ucode_agent
