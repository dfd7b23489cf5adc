#include "guest-agent/channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace ucode_agent {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// First line of a small sysfs attribute.
std::optional<std::string> ReadAttribute(const std::string& path) {
  ucode::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return std::nullopt;
  char buf[256];
  ssize_t n;
  do {
    n = read(fd.get(), buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return std::nullopt;
  std::string s(buf, static_cast<size_t>(n));
  s.resize(std::min(s.size(), s.find('\n')));
  return s;
}

ucode::UniqueFd ConnectUnix(const std::string& path, std::string* error) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    *error = "socket path too long: " + path;
    return ucode::UniqueFd();
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ucode::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *error = Errno("socket");
    return fd;
  }
  int r;
  do {
    r = connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  } while (r != 0 && errno == EINTR);
  if (r != 0 || fcntl(fd.get(), F_SETFL, O_NONBLOCK) != 0) {
    *error = Errno("connect " + path);
    return ucode::UniqueFd();
  }
  return fd;
}

}  // namespace

std::optional<std::string> FindVirtioPort(const ChannelOptions& options, std::string* error) {
  const std::string class_dir = options.sysfs_root + "/sys/class/virtio-ports";
  DIR* d = opendir(class_dir.c_str());
  if (d == nullptr) {
    *error = Errno("opendir " + class_dir) + " (is virtio_console loaded?)";
    return std::nullopt;
  }
  std::vector<std::string> ports;
  while (dirent* e = readdir(d)) {
    std::string port = e->d_name;
    // The driver names ports "vport<device>p<port>"; anything else is not ours
    // and must not become a path component.
    if (port.rfind("vport", 0) != 0 || port.find('/') != std::string::npos) continue;
    ports.push_back(std::move(port));
  }
  closedir(d);
  std::sort(ports.begin(), ports.end());
  for (const std::string& port : ports) {
    std::optional<std::string> name = ReadAttribute(class_dir + "/" + port + "/name");
    if (name && *name == options.port_name) return options.dev_dir + "/" + port;
  }
  *error = "no virtio port named '" + options.port_name + "' under " + class_dir;
  return std::nullopt;
}

ucode::UniqueFd OpenChannel(const ChannelOptions& options, ChannelKind* kind, std::string* error) {
  if (options.inherited_fd >= 0) {
    *kind = ChannelKind::kInheritedFd;
    // Take the fd over: close-on-exec so hooks never inherit the channel.
    int fd = options.inherited_fd;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
      *error = Errno("fd " + std::to_string(fd));
      return ucode::UniqueFd();
    }
    return ucode::UniqueFd(fd);
  }
  std::string path = options.device;
  if (path.empty()) {
    std::optional<std::string> found = FindVirtioPort(options, error);
    if (!found) return ucode::UniqueFd();
    path = *found;
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    *kind = ChannelKind::kUnixSocket;
    return ConnectUnix(path, error);
  }
  *kind = ChannelKind::kCharDevice;
  ucode::UniqueFd fd(open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) {
    *error = Errno("open " + path);
    return fd;
  }
  // Best effort: without SIGIO the loop still rechecks the port once a second.
  if (fcntl(fd.get(), F_SETOWN, getpid()) == 0) {
    int flags = fcntl(fd.get(), F_GETFL);
    if (flags >= 0) fcntl(fd.get(), F_SETFL, flags | O_ASYNC);
  }
  return fd;
}

}  // namespace ucode_agent
