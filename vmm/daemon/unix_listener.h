// The Unix-socket front door. gRPC 1.51 does not tell handlers who is calling over a Unix
// socket, so ucoded accepts connections itself, reads the caller's credentials with
// SO_PEERCRED (the kernel's record of the connecting process, not something the caller
// says), and only then hands the connection to a gRPC server (grpc::AddInsecureChannelFromFd).
#ifndef UCODE_VMM_DAEMON_UNIX_LISTENER_H_
#define UCODE_VMM_DAEMON_UNIX_LISTENER_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "host/base/unique_fd.h"

namespace ucode::daemon {

class UnixListener {
 public:
  // Called on the accept thread for every connection, with its credentials.
  using Handler = std::function<void(UniqueFd conn, const struct ucred& peer)>;

  // Binds `path` (creating its directory with mode 0755 if missing, replacing a stale
  // socket, refusing to replace anything else), sets `mode` on it and listens.
  static absl::StatusOr<std::unique_ptr<UnixListener>> Listen(const std::string& path,
                                                              mode_t mode);
  ~UnixListener();  // Stop(), then unlinks the socket
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Starts the accept thread ("ucoded-accept").
  void Start(Handler handler);
  // Stops accepting and joins the thread; connections already handed on are unaffected.
  void Stop();

 private:
  UnixListener(std::string path, UniqueFd listen_fd, UniqueFd wake_fd)
      : path_(std::move(path)), listen_fd_(std::move(listen_fd)), wake_fd_(std::move(wake_fd)) {}
  void AcceptLoop(const Handler& handler);

  const std::string path_;
  UniqueFd listen_fd_;
  UniqueFd wake_fd_;  // eventfd: Stop() writes it to end poll()
  std::thread thread_;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_UNIX_LISTENER_H_
