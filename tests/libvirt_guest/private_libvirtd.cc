#include "tests/libvirt_guest/private_libvirtd.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "host/base/unique_fd.h"

namespace ucode::testing {
namespace {

namespace fs = std::filesystem;

// libvirtd.conf keys: Debian's /etc/libvirt/libvirtd.conf documents each. Root-only
// socket, no authentication (root is the only one who can reach it).
std::string LibvirtdConf(const std::string& sock_dir) {
  return absl::StrCat("unix_sock_dir = \"", sock_dir, "\"\n",
                      "unix_sock_group = \"root\"\n"
                      "unix_sock_ro_perms = \"0700\"\n"
                      "unix_sock_rw_perms = \"0700\"\n"
                      "auth_unix_ro = \"none\"\n"
                      "auth_unix_rw = \"none\"\n");
}

bool SocketAccepts(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
}

// The child, between fork and execv: only syscalls on data prepared before fork.
[[noreturn]] void ExecInPrivateNamespace(const std::vector<std::pair<std::string, std::string>>& binds,
                                         int log_fd, char* const* argv) {
  dup2(log_fd, STDOUT_FILENO);
  dup2(log_fd, STDERR_FILENO);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) dup2(devnull, STDIN_FILENO);
  setsid();
  if (unshare(CLONE_NEWNS) != 0) _exit(120);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(121);
  for (const auto& [from, to] : binds) {
    mkdir(to.c_str(), 0755);  // the host's libvirt packages normally made them already
    if (mount(from.c_str(), to.c_str(), nullptr, MS_BIND, nullptr) != 0) _exit(122);
  }
  execv(argv[0], argv);
  _exit(127);
}

}  // namespace

absl::StatusOr<PrivateLibvirtd> PrivateLibvirtd::Start(const std::string& root,
                                                       absl::Duration timeout) {
  if (access("/usr/sbin/libvirtd", X_OK) != 0) {
    return absl::FailedPreconditionError("/usr/sbin/libvirtd is not installed (libvirt-daemon)");
  }
  const std::string sock_dir = root + "/sock";
  std::vector<std::pair<std::string, std::string>> binds = {
      {root + "/etc", "/etc/libvirt"},         {root + "/run", "/run/libvirt"},
      {root + "/lib", "/var/lib/libvirt"},     {root + "/cache", "/var/cache/libvirt"},
      {root + "/log", "/var/log/libvirt"},
  };
  for (const auto& [from, to] : binds) fs::create_directories(from);
  fs::create_directories(sock_dir);
  const std::string conf = root + "/etc/libvirtd.conf";
  std::ofstream(conf) << LibvirtdConf(sock_dir);

  const std::string log = root + "/libvirtd.log";
  UniqueFd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log_fd.valid()) return absl::InternalError(absl::StrCat("open ", log, ": ", strerror(errno)));
  // Its own pid file too: the default, /run/libvirtd.pid, is locked by the first
  // privileged libvirtd on the machine, so a second test's daemon would exit at start.
  std::vector<std::string> args = {"/usr/sbin/libvirtd", "--config", conf, "--pid-file",
                                   root + "/libvirtd.pid"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) ExecInPrivateNamespace(binds, log_fd.get(), argv.data());

  PrivateLibvirtd d(pid, absl::StrCat("qemu+unix:///system?socket=", sock_dir, "/libvirt-sock"));
  const absl::Time end = absl::Now() + timeout;
  while (!SocketAccepts(sock_dir + "/libvirt-sock")) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      d.pid_ = -1;
      return absl::FailedPreconditionError(absl::StrCat(
          "libvirtd exited (wait status ", status, ") before listening; see ", log));
    }
    if (absl::Now() > end) {
      return absl::DeadlineExceededError(absl::StrCat("libvirtd not listening after ",
                                                      absl::FormatDuration(timeout), "; see ", log));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return d;
}

void PrivateLibvirtd::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {  // libvirtd shuts down in well under a second
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace ucode::testing
