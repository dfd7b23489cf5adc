// Typed access to a command's "arguments" object with QAPI-style errors that
// name the offending argument, e.g. "Invalid parameter type for 'id',
// expected: integer" (the wording of QEMU's qobject input visitor).
#ifndef UCODE_GUEST_AGENT_ARGS_H_
#define UCODE_GUEST_AGENT_ARGS_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "guest-agent/json.h"

namespace ucode_agent {

class ArgReader {
 public:
  explicit ArgReader(const json::Value& args) : args_(args) {}

  // Fails if the arguments hold a member not in `known`.
  bool OnlyKnown(std::initializer_list<std::string_view> known);
  // Integer in [min, max]. Absent and optional: nullopt with ok() still true.
  std::optional<int64_t> Int(std::string_view name, bool required, int64_t min, int64_t max);
  // String of at most `max_bytes` printable characters (no control bytes:
  // values reach environment variables and log lines).
  std::optional<std::string> String(std::string_view name, bool required, size_t max_bytes);

  [[nodiscard]] bool ok() const { return error_.empty(); }
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  bool Fail(std::string message);
  // The member `name` if present and of `type` (`type_name` in QAPI's words), else nullptr:
  // absent (an error when `required`) or of another type (always an error).
  const json::Value* Get(std::string_view name, bool required, json::Value::Type type,
                         const char* type_name);

  const json::Value& args_;
  std::string error_;
};

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_ARGS_H_
