#include "guest-agent/session.h"

namespace ucode_agent {
namespace {

void AppendReply(const CommandResult& result, const json::Value* id, bool sentinel,
                 std::string* out) {
  json::Value reply = json::Object{};
  if (result.ok) {
    reply.Set("return", result.value);
  } else {
    json::Value error = json::Object{};
    error.Set("class", result.error_class);
    error.Set("desc", result.desc);
    reply.Set("error", std::move(error));
  }
  if (id != nullptr) reply.Set("id", *id);
  if (sentinel) out->push_back(static_cast<char>(kResyncByte));
  out->append(json::Serialize(reply));
  out->push_back('\n');
}

}  // namespace

void Session::Feed(std::string_view input, std::string* out) {
  framer_.Feed(input, [&](LineFramer::Event event, std::string_view line) {
    if (event == LineFramer::Event::kOversized) {
      AppendReply(CommandResult::Error("Command line longer than " +
                                       std::to_string(max_line_bytes_) +
                                       " bytes; discarded up to the next newline"),
                  nullptr, false, out);
      return;
    }
    HandleLine(line, out);
  });
}

void Session::HandleLine(std::string_view line, std::string* out) {
  json::ParseError perr;
  std::optional<json::Value> request = json::Parse(line, limits_, &perr);
  if (!request) {
    AppendReply(CommandResult::Error("JSON parse error at byte " + std::to_string(perr.offset) +
                                     ": " + perr.message),
                nullptr, false, out);
    return;
  }
  if (!request->is_object()) {
    AppendReply(CommandResult::Error("QMP input must be a JSON object"), nullptr, false, out);
    return;
  }
  const json::Value* id = request->Find("id");
  // Members allowed in a command by the QMP specification (section 2.3);
  // qemu-ga has no out-of-band execution, so "exec-oob" is not among them.
  for (const json::Member& m : request->as_object()) {
    if (m.key != "execute" && m.key != "arguments" && m.key != "id") {
      AppendReply(CommandResult::Error("QMP input member '" + m.key + "' is unexpected"), id,
                  false, out);
      return;
    }
  }
  const json::Value* execute = request->Find("execute");
  if (execute == nullptr) {
    AppendReply(CommandResult::Error("QMP input lacks member 'execute'"), id, false, out);
    return;
  }
  if (!execute->is_string()) {
    AppendReply(CommandResult::Error("QMP input member 'execute' must be a string"), id, false,
                out);
    return;
  }
  static const json::Value kNoArguments = json::Object{};
  const json::Value* args = request->Find("arguments");
  if (args == nullptr) {
    args = &kNoArguments;
  } else if (!args->is_object()) {
    AppendReply(CommandResult::Error("QMP input member 'arguments' must be an object"), id,
                false, out);
    return;
  }
  const Command* command = table_->Find(execute->as_string());
  if (command == nullptr) {
    // qemu-ga's wording (qapi/qmp-dispatch.c).
    AppendReply(CommandResult::Error("The command " + execute->as_string() + " has not been found",
                                     kCommandNotFound),
                id, false, out);
    return;
  }
  CommandResult result = command->handler(*args);
  // qemu-ga emits the sentinel from the command itself, so only a command
  // that ran (valid arguments) gets one.
  AppendReply(result, id, command->sentinel_before_reply && result.ok, out);
}

}  // namespace ucode_agent
