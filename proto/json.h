// The one JSON form of ucode's output: a message through protobuf's JSON printer, keys as
// the .proto spells them, every scalar printed (false, 0 and "" too) except an unset
// `optional` one, which stays absent.
#ifndef UCODE_PROTO_JSON_H_
#define UCODE_PROTO_JSON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace ucode {

// One line, no trailing newline; `indented`: several lines for a terminal.
std::string ProtoJson(const google::protobuf::Message& message, bool indented = false);

// Parses what ProtoJson printed (strict: an unknown key is an error naming it).
absl::Status ParseProtoJson(absl::string_view json, google::protobuf::Message& message);

}  // namespace ucode

#endif  // UCODE_PROTO_JSON_H_
