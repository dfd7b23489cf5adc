#include "guest-agent/cpuinfo.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "host/base/unique_fd_core.h"

namespace ucode_agent {
namespace {

constexpr size_t kMaxCpuinfoBytes = 4 << 20;

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

std::optional<MicrocodeView> ParseCpuinfo(std::string_view text) {
  MicrocodeView view;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || Trim(line.substr(0, colon)) != "microcode") continue;
    std::string value(Trim(line.substr(colon + 1)));
    errno = 0;
    char* end = nullptr;
    unsigned long long rev = std::strtoull(value.c_str(), &end, 0);
    if (errno != 0 || end == value.c_str() || *end != '\0' || rev > 0xFFFFFFFFull) continue;
    if (view.cpus == 0) {
      view.revision = static_cast<uint32_t>(rev);
    } else if (rev != view.revision) {
      view.consistent = false;
    }
    ++view.cpus;
  }
  if (view.cpus == 0) return std::nullopt;
  return view;
}

std::optional<MicrocodeView> ReadCpuinfo(const std::string& path) {
  ucode::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  // procfs reports size 0: read until EOF.
  std::string data;
  char buf[8192];
  while (data.size() < kMaxCpuinfoBytes) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return ParseCpuinfo(data);
}

}  // namespace ucode_agent
