#include "tests/agent_e2e/agent_process.h"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

extern char** environ;

namespace ucode_agent_e2e {

std::string AgentBinary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" + (workspace ? workspace : "ucode") +
         "/guest-agent/ucode-agent";
}

AgentProcess::AgentProcess(const std::vector<std::string>& args, int channel_fd) {
  std::string binary = AgentBinary();
  std::vector<char*> argv;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (channel_fd >= 0) posix_spawn_file_actions_adddup2(&actions, channel_fd, 3);
  if (posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
}

AgentProcess::~AgentProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

int AgentProcess::Terminate() {
  int status = -1;
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  return status;
}

std::optional<std::string> ReadLine(int fd, std::string* buffer) {
  for (int waited_ms = 0; waited_ms < 20000;) {
    size_t nl = buffer->find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer->substr(0, nl);
      buffer->erase(0, nl + 1);
      return line;
    }
    pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r == 0) {
      waited_ms += 100;
      continue;
    }
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return std::nullopt;
    buffer->append(chunk, static_cast<size_t>(n));
  }
  return std::nullopt;
}

}  // namespace ucode_agent_e2e
