// A minimal streaming JSON writer for the reports and command output of ucode: objects,
// arrays, strings (escaped), integers and booleans, on one line. Commas are placed for the caller;
// nesting is the caller's job (Begin/End must pair). No allocation beyond the output string.
#ifndef UCODE_HOST_BASE_JSON_WRITER_H_
#define UCODE_HOST_BASE_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ucode {

class JsonWriter {
 public:
  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();

  // Key + value shorthands.
  JsonWriter& Str(absl::string_view key, absl::string_view value) { return Key(key).String(value); }
  JsonWriter& Num(absl::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Flag(absl::string_view key, bool value) { return Key(key).Bool(value); }
  // Microseconds, the unit every duration in our JSON uses ("..._us").
  JsonWriter& Micros(absl::string_view key, absl::Duration d);

  [[nodiscard]] const std::string& str() const { return out_; }

 private:
  JsonWriter& Open(char c);
  JsonWriter& Close(char c);
  void BeforeValue();
  void AppendEscaped(absl::string_view s);

  std::string out_;
  std::vector<bool> has_items_;  // per open container
  bool after_key_ = false;
};

// `s` as one quoted, escaped JSON string.
std::string JsonQuote(absl::string_view s);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_JSON_WRITER_H_
