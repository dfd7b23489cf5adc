// The command table and the replies of the QEMU guest agent protocol.
//
// Reply shapes follow the QEMU Machine Protocol specification (docs/interop/
// qmp-spec): success is {"return": VALUE}, failure is
// {"error": {"class": CLASS, "desc": TEXT}}; "id" is echoed when the command
// carried one. Error classes are QMP's: "CommandNotFound" for an unknown
// command, "GenericError" for everything else, as qemu-ga uses them.
#ifndef UCODE_GUEST_AGENT_COMMANDS_H_
#define UCODE_GUEST_AGENT_COMMANDS_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "guest-agent/json.h"

namespace ucode_agent {

inline constexpr char kGenericError[] = "GenericError";
inline constexpr char kCommandNotFound[] = "CommandNotFound";

struct CommandResult {
  bool ok = true;
  json::Value value;        // the "return" value when ok
  std::string error_class;  // when !ok
  std::string desc;         // when !ok

  static CommandResult Ok(json::Value v) { return {true, std::move(v), {}, {}}; }
  static CommandResult Error(std::string desc, std::string cls = kGenericError) {
    return {false, {}, std::move(cls), std::move(desc)};
  }
};

// `args` is always an object (empty when the command had no "arguments").
using CommandHandler = std::function<CommandResult(const json::Value& args)>;

struct Command {
  std::string name;
  CommandHandler handler;
  // guest-sync-delimited: the reply is preceded by the 0xFF sentinel byte.
  bool sentinel_before_reply = false;
};

class CommandTable {
 public:
  void Add(Command command) { commands_.push_back(std::move(command)); }
  [[nodiscard]] const Command* Find(std::string_view name) const;
  [[nodiscard]] const std::vector<Command>& commands() const { return commands_; }

 private:
  std::vector<Command> commands_;
};

// guest-sync, guest-sync-delimited, guest-ping and guest-info. guest-info
// lists `table` as it is when called, so register these first or last alike.
void AddProtocolCommands(CommandTable* table, std::string version);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_COMMANDS_H_
