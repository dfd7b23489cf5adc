#include "guest-agent/commands.h"

#include <limits>

#include "guest-agent/args.h"

namespace ucode_agent {

const Command* CommandTable::Find(std::string_view name) const {
  for (const Command& c : commands_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

namespace {

// guest-sync and guest-sync-delimited: {"id": int} echoed back unchanged
// (QEMU qga/qapi-schema.json; the id is QAPI 'int', i.e. int64).
CommandResult Sync(const json::Value& args) {
  ArgReader r(args);
  r.OnlyKnown({"id"});
  std::optional<int64_t> id = r.Int("id", true, std::numeric_limits<int64_t>::min(),
                                    std::numeric_limits<int64_t>::max());
  if (!r.ok()) return CommandResult::Error(r.error());
  return CommandResult::Ok(*id);
}

CommandResult NoArguments(const json::Value& args) {
  ArgReader r(args);
  r.OnlyKnown({});
  return r.ok() ? CommandResult::Ok(json::Object{}) : CommandResult::Error(r.error());
}

}  // namespace

void AddProtocolCommands(CommandTable* table, std::string version) {
  table->Add({"guest-sync", Sync, false});
  table->Add({"guest-sync-delimited", Sync, true});
  table->Add({"guest-ping", NoArguments, false});
  table->Add({"guest-info",
              [table, version](const json::Value& args) {
                CommandResult r = NoArguments(args);
                if (!r.ok) return r;
                // Shape of qemu-ga's GuestAgentInfo / GuestAgentCommandInfo.
                json::Array list;
                for (const Command& c : table->commands()) {
                  json::Value info = json::Object{};
                  info.Set("name", c.name);
                  info.Set("enabled", true);
                  info.Set("success-response", true);
                  list.push_back(std::move(info));
                }
                json::Value ret = json::Object{};
                ret.Set("version", version);
                ret.Set("supported_commands", std::move(list));
                return CommandResult::Ok(std::move(ret));
              },
              false});
}

}  // namespace ucode_agent
