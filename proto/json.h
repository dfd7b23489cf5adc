// The one JSON form of ucode's output: a message through protobuf's JSON printer, keys as
// the .proto spells them, every scalar printed (false, 0 and "" too) except an unset
// `optional` one, which stays absent.
#ifndef UCODE_PROTO_JSON_H_
#define UCODE_PROTO_JSON_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace ucode {

// One line, no trailing newline; `indented`: several lines for a terminal.
std::string ProtoJson(const google::protobuf::Message& message, bool indented = false);

// A benchmark's one JSON line is an untyped google.protobuf.Struct through ProtoJson:
// the value at `key`, to set.
google::protobuf::Value& StructField(google::protobuf::Struct& s, absl::string_view key);

// A duration as the reports' `_us` fields carry it: whole microseconds in 32 bits,
// clamped (71 minutes, far beyond any hold), so that the JSON keeps plain numbers (64-bit
// integers would print as strings).
uint32_t ProtoMicros(absl::Duration d);

// Parses what ProtoJson printed (strict: an unknown key is an error naming it).
absl::Status ParseProtoJson(absl::string_view json, google::protobuf::Message& message);

}  // namespace ucode

#endif  // UCODE_PROTO_JSON_H_
