// A private libvirtd for tests that need a second process (ucodectl) on the same libvirt
// host as the test itself. The embedded driver (qemu:///embed) cannot do that: it runs
// inside the process that opens it, and two processes must not drive one embed root.
//
// The daemon is Debian's own /usr/sbin/libvirtd, privileged (root), started in a private
// mount namespace where /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/cache/libvirt
// and /var/log/libvirt are bind mounts of directories under `root`: it sees none of the
// host's libvirt state, and the host's libvirt sees none of it. Its sockets are in
// `root`/sock (unix_sock_dir), reached as qemu+unix:///system?socket=... by anyone.
// QEMU pidfiles land in `root`/run/qemu, the same place as the embedded driver's.
#ifndef UCODE_TESTS_LIBVIRT_GUEST_PRIVATE_LIBVIRTD_H_
#define UCODE_TESTS_LIBVIRT_GUEST_PRIVATE_LIBVIRTD_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ucode::testing {

class PrivateLibvirtd {
 public:
  // Starts the daemon with `root`/etc/qemu.conf (written by the caller) and waits until
  // its socket accepts connections.
  static absl::StatusOr<PrivateLibvirtd> Start(const std::string& root, absl::Duration timeout);

  PrivateLibvirtd(PrivateLibvirtd&& other) noexcept
      : pid_(other.pid_), uri_(std::move(other.uri_)) {
    other.pid_ = -1;
  }
  PrivateLibvirtd& operator=(PrivateLibvirtd&&) = delete;
  ~PrivateLibvirtd() { Stop(); }

  [[nodiscard]] const std::string& uri() const { return uri_; }
  [[nodiscard]] pid_t pid() const { return pid_; }

  // SIGTERM, then SIGKILL after a grace period; reaps it. Idempotent. QEMU processes it
  // started keep running (libvirt daemonizes them): the caller kills them by pidfile.
  void Stop();

 private:
  PrivateLibvirtd(pid_t pid, std::string uri) : pid_(pid), uri_(std::move(uri)) {}
  pid_t pid_ = -1;
  std::string uri_;
};

}  // namespace ucode::testing

#endif  // UCODE_TESTS_LIBVIRT_GUEST_PRIVATE_LIBVIRTD_H_
