// One protocol session: bytes from the host in, reply bytes out. Pure logic,
// no I/O, so the fuzzer and the unit tests drive exactly what the agent runs.
//
// Called from the agent's single thread; a command's handler runs to
// completion (hooks included) before the next line is looked at, as in qemu-ga.
#ifndef UCODE_GUEST_AGENT_SESSION_H_
#define UCODE_GUEST_AGENT_SESSION_H_

#include <string>
#include <string_view>

#include "guest-agent/commands.h"
#include "guest-agent/json.h"
#include "guest-agent/line_framer.h"

namespace ucode_agent {

class Session {
 public:
  // `table` must outlive the session.
  explicit Session(const CommandTable* table, size_t max_line_bytes = kMaxLineBytes,
                   json::Limits limits = {})
      : table_(table), max_line_bytes_(max_line_bytes), framer_(max_line_bytes), limits_(limits) {}

  // Consumes input and appends every reply, each a JSON line ending in "\n"
  // (and preceded by 0xFF for guest-sync-delimited), to `out`.
  void Feed(std::string_view input, std::string* out);

  // The host went away: drop any partial line.
  void Reset() { framer_.Reset(); }

  // Handles one complete line (exposed for tests).
  void HandleLine(std::string_view line, std::string* out);

 private:
  const CommandTable* table_;
  size_t max_line_bytes_;
  LineFramer framer_;
  json::Limits limits_;
};

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_SESSION_H_
