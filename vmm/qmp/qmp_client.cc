#include "vmm/qmp/qmp_client.h"

#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"

namespace ucode::qmp {
namespace {

using nlohmann::json;

absl::StatusOr<json> Parse(const std::string& line, absl::string_view path) {
  json msg = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (msg.is_discarded() || !msg.is_object()) {
    return absl::DataLossError(absl::StrCat("QMP on ", path, ": not a JSON object: ",
                                            line.substr(0, 200)));
  }
  return msg;
}

// Field readers that never throw: json::value() throws on a type mismatch, and what
// QEMU sends is input, not an invariant of ours.
std::string StringField(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t IntField(const json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

json Field(const json& obj, const char* key) {
  if (!obj.is_object()) return json();
  auto it = obj.find(key);
  return it != obj.end() ? *it : json();
}

absl::StatusCode CodeForClass(const std::string& error_class) {
  if (error_class == "CommandNotFound") return absl::StatusCode::kUnimplemented;
  if (error_class == "DeviceNotFound") return absl::StatusCode::kNotFound;
  return absl::StatusCode::kFailedPrecondition;
}

absl::Time QemuTime(const json& msg) {
  const json ts = Field(msg, "timestamp");
  const int64_t s = IntField(ts, "seconds");
  const int64_t us = IntField(ts, "microseconds");
  return absl::FromUnixMicros(s * 1'000'000 + us);
}

}  // namespace

absl::StatusOr<std::unique_ptr<QmpClient>> QmpClient::Connect(absl::string_view socket_path,
                                                              absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ASSIGN_OR_RETURN(LineSocket socket, LineSocket::Connect(socket_path, deadline));
  std::unique_ptr<QmpClient> client(new QmpClient(std::move(socket)));
  ASSIGN_OR_RETURN(std::string line, client->socket_.ReadLine(deadline));
  ASSIGN_OR_RETURN(json greeting, Parse(line, socket_path));
  if (!greeting.contains("QMP") || !greeting["QMP"].is_object()) {
    return absl::DataLossError(absl::StrCat("QMP on ", socket_path,
                                            ": first message is not a greeting: ",
                                            line.substr(0, 200)));
  }
  client->greeting_ = greeting["QMP"];
  // Capabilities negotiation mode accepts only qmp_capabilities (qmp-spec.rst 4).
  RETURN_IF_ERROR(
      client->Execute("qmp_capabilities", json::object(), deadline - absl::Now()).status());
  return client;
}

absl::StatusOr<json> QmpClient::ReadMessage(absl::Time deadline, bool* was_event) {
  ASSIGN_OR_RETURN(std::string line, socket_.ReadLine(deadline));
  ASSIGN_OR_RETURN(json msg, Parse(line, socket_.path()));
  *was_event = msg.contains("event") && msg["event"].is_string();
  if (*was_event) {
    events_.push_back(QmpEvent{msg["event"].get<std::string>(), Field(msg, "data"),
                               QemuTime(msg), absl::Now()});
    if (events_.size() > kMaxPendingEvents) events_.pop_front();
  }
  return msg;
}

absl::StatusOr<json> QmpClient::Execute(absl::string_view command, const json& arguments,
                                        absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const int64_t id = next_id_++;
  json request = {{"execute", std::string(command)}, {"id", id}};
  if (!arguments.empty()) request["arguments"] = arguments;
  RETURN_IF_ERROR(socket_.WriteLine(request.dump(), deadline));
  for (;;) {
    bool was_event = false;
    absl::StatusOr<json> msg = ReadMessage(deadline, &was_event);
    if (!msg.ok()) {
      return absl::Status(msg.status().code(),
                          absl::StrCat("QMP ", command, ": ", msg.status().message()));
    }
    // Events, and replies to earlier commands that timed out on our side, are skipped.
    if (was_event || !msg->contains("id") || (*msg)["id"] != id) continue;
    if (msg->contains("return")) return (*msg)["return"];
    if (!msg->contains("error")) {
      return absl::DataLossError(absl::StrCat("QMP ", command, ": reply has neither return ",
                                              "nor error: ", msg->dump().substr(0, 200)));
    }
    const json err = Field(*msg, "error");
    const std::string cls = StringField(err, "class");
    return absl::Status(CodeForClass(cls),
                        absl::StrCat("QMP ", command, " on ", socket_.path(), ": ", cls, ": ",
                                     StringField(err, "desc")));
  }
}

absl::Status QmpClient::Stop(absl::Duration timeout) {
  return Execute("stop", json::object(), timeout).status();
}

absl::Status QmpClient::Cont(absl::Duration timeout) {
  return Execute("cont", json::object(), timeout).status();
}

absl::StatusOr<std::string> QmpClient::QueryStatus(absl::Duration timeout) {
  ASSIGN_OR_RETURN(json r, Execute("query-status", json::object(), timeout));
  if (!r.is_object() || !r.contains("status") || !r["status"].is_string()) {
    return absl::DataLossError(absl::StrCat("QMP query-status: no status in ", r.dump()));
  }
  return r["status"].get<std::string>();
}

absl::StatusOr<QmpEvent> QmpClient::WaitForEvent(absl::string_view name,
                                                  absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->name == name) {
        QmpEvent e = std::move(*it);
        events_.erase(it);
        return e;
      }
    }
    bool was_event = false;
    absl::StatusOr<json> msg = ReadMessage(deadline, &was_event);
    if (!msg.ok()) {
      return absl::Status(msg.status().code(), absl::StrCat("waiting for QMP event ", name,
                                                            ": ", msg.status().message()));
    }
  }
}

}  // namespace ucode::qmp
