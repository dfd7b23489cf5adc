// Spawns ucode-agent as a child process and exchanges protocol lines with it.
#ifndef UCODE_TESTS_AGENT_E2E_AGENT_PROCESS_H_
#define UCODE_TESTS_AGENT_E2E_AGENT_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "guest-agent/write_all.h"

namespace ucode_agent_e2e {

// Path of the agent binary in the test's runfiles.
std::string AgentBinary();

class AgentProcess {
 public:
  // Starts the agent with `args`. If `channel_fd` >= 0 it becomes the agent's
  // fd 3 (and "--fd 3" is up to the caller to pass).
  AgentProcess(const std::vector<std::string>& args, int channel_fd);
  ~AgentProcess();  // SIGKILL + reap if still running
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  // Sends SIGTERM and returns the exit status (waitpid form).
  int Terminate();

 private:
  pid_t pid_ = -1;
};

// Reads from `fd` until `*buffer` holds a '\n'; returns the first line (without
// it) and leaves the rest in `*buffer`. nullopt on EOF or after 20 s without a
// complete line (a hang guard, not a timing assertion).
std::optional<std::string> ReadLine(int fd, std::string* buffer);
using ::ucode_agent::WriteAll;

}  // namespace ucode_agent_e2e

#endif  // UCODE_TESTS_AGENT_E2E_AGENT_PROCESS_H_
