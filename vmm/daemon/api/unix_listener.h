// The Unix-socket front door. gRPC 1.51 does not tell handlers who is calling over a Unix
// socket, so ucoded accepts connections itself, reads the caller's credentials with
// SO_PEERCRED (the kernel's record of the connecting process, not something the caller
// says), and only then hands the connection to a gRPC server (grpc::AddInsecureChannelFromFd).
#ifndef UCODE_VMM_DAEMON_API_UNIX_LISTENER_H_
#define UCODE_VMM_DAEMON_API_UNIX_LISTENER_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "host/base/unique_fd.h"

namespace ucode::daemon {

class UnixListener {
 public:
  // Who is calling, as the kernel recorded it when they connected.
  struct Peer {
    struct ucred cred = {};     // SO_PEERCRED: pid, uid, primary gid
    std::vector<gid_t> groups;  // SO_PEERGROUPS: supplementary groups
  };
  // Called on the accept thread for every connection, with its credentials. Dropping
  // `conn` closes the connection at once.
  using Handler = std::function<void(UniqueFd conn, const Peer& peer)>;

  // Binds `path` (creating its directory with mode 0755 if missing, replacing a stale
  // socket, refusing to replace a live one or anything else) with `mode`, and listens.
  static absl::StatusOr<std::unique_ptr<UnixListener>> Listen(const std::string& path,
                                                              mode_t mode);
  ~UnixListener();  // Stop(), then unlinks the socket if it is still the one we bound
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

  // Starts the accept thread ("ucoded-accept").
  void Start(Handler handler);
  // Stops accepting and joins the thread; connections already handed on are unaffected.
  void Stop();

  // Open connections accepted on this socket whose peer is `uid` (the one being handled
  // included), read from the kernel (/proc/self/fd), whoever holds them now.
  [[nodiscard]] int ConnectionsFrom(uid_t uid) const;

 private:
  UnixListener(std::string path, UniqueFd listen_fd, UniqueFd wake_fd)
      : path_(std::move(path)), listen_fd_(std::move(listen_fd)), wake_fd_(std::move(wake_fd)) {}
  void AcceptLoop(const Handler& handler);
  static absl::StatusOr<Peer> PeerOf(int conn);

  const std::string path_;
  UniqueFd listen_fd_;
  UniqueFd wake_fd_;  // eventfd: Stop() writes it to end poll()
  dev_t bound_dev_ = 0;
  ino_t bound_ino_ = 0;
  std::thread thread_;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_UNIX_LISTENER_H_
