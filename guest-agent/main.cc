// ucode-agent: the guest side of ucode. See guest-agent/README.md.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#include "guest-agent/agent_loop.h"
#include "guest-agent/channel.h"
#include "guest-agent/commands.h"
#include "guest-agent/session.h"
#include "guest-agent/ucode_commands.h"

namespace {

constexpr char kVersion[] = "0.1.0";

constexpr char kUsage[] =
    "usage: ucode-agent [options]\n"
    "  --port-name NAME    virtio-serial port name (default org.qemu.guest_agent.0)\n"
    "  --device PATH       use PATH (character device, pty or Unix socket) instead\n"
    "  --fd N              use the already-open fd N; exit when it reaches EOF\n"
    "  --sysfs-root DIR    prefix for /sys/class/virtio-ports (testing)\n"
    "  --dev-dir DIR       where port device nodes live (default /dev)\n"
    "  --prepare-dir DIR   prepare hooks (default /etc/ucode-agent/prepare.d)\n"
    "  --complete-dir DIR  complete hooks (default /etc/ucode-agent/complete.d)\n"
    "  --state-dir DIR     records (default /run/ucode-agent)\n"
    "  --cpuinfo PATH      cpuinfo file (default /proc/cpuinfo)\n"
    "  --version, --help\n";

// Hooks get the pipe as stdout; if the agent itself was started with fds
// 0-2 closed, pipe2() could hand out 0-2 and dup2 onto itself would keep
// O_CLOEXEC. Occupy them first.
void EnsureStdFds() {
  for (int fd = 0; fd < 3; ++fd) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int nfd = open("/dev/null", O_RDWR);
      if (nfd >= 0 && nfd != fd) close(nfd);
    }
  }
}

bool ParseFd(const char* s, int* out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 0 || v > 1 << 20) return false;
  *out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  EnsureStdFds();
  ucode_agent::ChannelOptions channel;
  ucode_agent::UcodeConfig config;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (arg == "--version") {
      std::printf("ucode-agent %s\n", kVersion);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "ucode-agent: unknown or incomplete option %s\n%s", argv[i], kUsage);
      return 2;
    }
    const char* value = argv[++i];
    const std::pair<std::string_view, std::string*> kTextOptions[] = {
        {"--port-name", &channel.port_name},    {"--device", &channel.device},
        {"--sysfs-root", &channel.sysfs_root},  {"--dev-dir", &channel.dev_dir},
        {"--prepare-dir", &config.prepare_dir}, {"--complete-dir", &config.complete_dir},
        {"--state-dir", &config.state_dir},     {"--cpuinfo", &config.cpuinfo_path}};
    auto text = std::find_if(std::begin(kTextOptions), std::end(kTextOptions),
                             [&](const auto& o) { return o.first == arg; });
    if (text != std::end(kTextOptions)) {
      *text->second = value;
    } else if (arg == "--fd") {
      if (!ParseFd(value, &channel.inherited_fd)) {
        std::fprintf(stderr, "ucode-agent: bad --fd %s\n", value);
        return 2;
      }
    } else {
      std::fprintf(stderr, "ucode-agent: unknown option %s\n%s", argv[i - 1], kUsage);
      return 2;
    }
  }

  ucode_agent::CommandTable table;
  ucode_agent::AddProtocolCommands(&table, kVersion);
  ucode_agent::AddUcodeCommands(&table, config);
  ucode_agent::Session session(&table);
  return ucode_agent::RunAgentLoop(channel, &session);
}
