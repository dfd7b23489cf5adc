// The agent's own commands:
//   guest-ucode-prepare  {"deadline-ms": int, "measure-ms"?: int, optional facts}
//                        -> runs prepare.d hooks; with measure-ms, starts the blackout
//                           meter (blackout_meter.h) for at most that long
//   guest-ucode-complete {"old-revision": int, "new-revision": int,
//                         "host": str, "mode": str, "deadline-ms": int}
//                        -> stops the meter, records the update and the blackout,
//                           runs complete.d hooks
//   guest-ucode-status   {} -> the records plus the revision /proc/cpuinfo shows
// Argument and reply shapes are documented in guest-agent/README.md.
#ifndef UCODE_GUEST_AGENT_UCODE_COMMANDS_H_
#define UCODE_GUEST_AGENT_UCODE_COMMANDS_H_

#include <cstddef>
#include <string>

#include "guest-agent/commands.h"

namespace ucode_agent {

struct UcodeConfig {
  std::string prepare_dir = "/etc/ucode-agent/prepare.d";
  std::string complete_dir = "/etc/ucode-agent/complete.d";
  std::string state_dir = "/run/ucode-agent";
  std::string cpuinfo_path = "/proc/cpuinfo";
  bool sync_state = true;  // fsync records (the fuzzer turns it off)
  // Honour prepare's "measure-ms" (the fuzzer turns it off: the argument is still checked).
  bool blackout_meter = true;
  size_t max_hook_output_bytes = 4096;
};

inline constexpr int64_t kMaxDeadlineMs = 10 * 60 * 1000;
inline constexpr int64_t kDefaultCompleteDeadlineMs = 10 * 1000;
inline constexpr char kLastPrepareRecord[] = "last-prepare.json";
inline constexpr char kLastCompleteRecord[] = "last-complete.json";

void AddUcodeCommands(CommandTable* table, const UcodeConfig& config);

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_UCODE_COMMANDS_H_
