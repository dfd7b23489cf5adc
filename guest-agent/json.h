// A small JSON value, parser and writer for the guest agent protocol.
//
// Everything the agent parses comes from the host over the virtio port and is
// treated as hostile: the parser is iterative-safe (bounded recursion depth),
// enforces hard limits on string length, container size and total node count,
// accepts only valid UTF-8 and never aborts. Numbers that are integers and fit
// in int64 stay exact (guest-sync ids are QAPI 'int', libvirt uses
// milliseconds since the epoch); everything else becomes a double.
#ifndef UCODE_GUEST_AGENT_JSON_H_
#define UCODE_GUEST_AGENT_JSON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ucode_agent::json {

struct Member;
class Value;
using Array = std::vector<Value>;
// Objects keep insertion order; lookups are linear (objects are small and
// their size is capped by Limits::max_members).
using Object = std::vector<Member>;

class Value {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  // Constructors are defined after Member: clang instantiates the variant's
  // destructor with them and needs Member complete by then.
  Value();
  Value(std::nullptr_t);
  Value(bool b);
  Value(int i);
  Value(int64_t i);
  Value(uint32_t i);
  Value(double d);
  Value(const char* s);
  Value(std::string s);
  Value(std::string_view s);
  Value(Array a);
  Value(Object o);

  [[nodiscard]] Type type() const { return static_cast<Type>(v_.index()); }
  [[nodiscard]] bool is_string() const { return type() == Type::kString; }
  [[nodiscard]] bool is_object() const { return type() == Type::kObject; }

  // Accessors require the matching type (checked by the caller).
  [[nodiscard]] bool as_bool() const { return std::get<bool>(v_); }
  [[nodiscard]] int64_t as_int() const { return std::get<int64_t>(v_); }
  [[nodiscard]] double as_double() const { return std::get<double>(v_); }
  [[nodiscard]] const std::string& as_string() const { return std::get<std::string>(v_); }
  [[nodiscard]] const Array& as_array() const { return std::get<Array>(v_); }
  [[nodiscard]] Array& as_array() { return std::get<Array>(v_); }
  [[nodiscard]] const Object& as_object() const { return std::get<Object>(v_); }
  [[nodiscard]] Object& as_object() { return std::get<Object>(v_); }

  // Object member lookup; nullptr when this is not an object or has no such key.
  [[nodiscard]] const Value* Find(std::string_view key) const;
  // Appends (or replaces) a member; this must be an object.
  Value& Set(std::string key, Value value);

  friend bool operator==(const Value& a, const Value& b);

 private:
  // Alternative order matches Type.
  std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> v_;
};

struct Member {
  std::string key;
  Value value;
  friend bool operator==(const Member& a, const Member& b) {
    return a.key == b.key && a.value == b.value;
  }
};

inline Value::Value() = default;
inline Value::Value(std::nullptr_t) {}
inline Value::Value(bool b) : v_(b) {}
inline Value::Value(int i) : v_(static_cast<int64_t>(i)) {}
inline Value::Value(int64_t i) : v_(i) {}
inline Value::Value(uint32_t i) : v_(static_cast<int64_t>(i)) {}
inline Value::Value(double d) : v_(d) {}
inline Value::Value(const char* s) : v_(std::string(s)) {}
inline Value::Value(std::string s) : v_(std::move(s)) {}
inline Value::Value(std::string_view s) : v_(std::string(s)) {}
inline Value::Value(Array a) : v_(std::move(a)) {}
inline Value::Value(Object o) : v_(std::move(o)) {}

struct Limits {
  size_t max_depth = 32;            // nested arrays/objects
  size_t max_string_bytes = 16384;  // decoded bytes of one string or key
  size_t max_members = 512;         // entries of one array or object
  size_t max_nodes = 8192;          // values in one document
};

struct ParseError {
  size_t offset = 0;  // byte offset in the input where parsing stopped
  std::string message;
};

// Parses exactly one JSON value (RFC 8259) surrounded by optional whitespace.
// Also rejects duplicate object keys and "\u0000" (values end up in C strings
// and environment variables).
[[nodiscard]] std::optional<Value> Parse(std::string_view text, const Limits& limits,
                                         ParseError* error);

// Compact serialisation. Strings that are not valid UTF-8 (e.g. captured hook
// output) get U+FFFD for each bad byte so the output is always valid JSON.
[[nodiscard]] std::string Serialize(const Value& value);

}  // namespace ucode_agent::json

#endif  // UCODE_GUEST_AGENT_JSON_H_
