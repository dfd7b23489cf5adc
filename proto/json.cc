#include "proto/json.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"

namespace ucode {

std::string ProtoJson(const google::protobuf::Message& message, bool indented) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = indented;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Fails only on a message that cannot exist here (an Any of an unknown type).
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  if (indented && !json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

google::protobuf::Value& StructField(google::protobuf::Struct& s, absl::string_view key) {
  return (*s.mutable_fields())[std::string(key)];
}

uint32_t ProtoMicros(absl::Duration d) {
  return static_cast<uint32_t>(std::clamp<int64_t>(absl::ToInt64Microseconds(d), 0,
                                                   std::numeric_limits<uint32_t>::max()));
}

absl::Status ParseProtoJson(absl::string_view json, google::protobuf::Message& message) {
  google::protobuf::util::Status s = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &message);
  if (s.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(message.GetTypeName(), " from JSON: ",
                                                 std::string(s.message())));
}

}  // namespace ucode
