// ucoded assembled: journal + recovery, the service, the Unix-socket front door with its
// allow list, and optional mutual-TLS TCP. Owned by the binary's main (daemon_main.cc)
// and by tests, which run it in-process.
#ifndef UCODE_VMM_DAEMON_DAEMON_H_
#define UCODE_VMM_DAEMON_DAEMON_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "vmm/daemon/operations/journal.h"
#include "vmm/daemon/operations/operation_registry.h"
#include "host/base/private_files.h"
#include "vmm/daemon/api/request_validation.h"
#include "vmm/daemon/api/service.h"
#include "vmm/daemon/api/unix_listener.h"
#include "vmm/daemon/operations/update_runner.h"

namespace ucode::daemon {

struct DaemonOptions {
  std::string unix_socket = "/run/ucoded/ucoded.sock";  // empty: no Unix socket
  mode_t unix_socket_mode = 0660;
  // A caller is served if its uid is listed, or its primary or a supplementary gid is.
  // Anyone else's connection is closed as soon as it is accepted.
  std::vector<uid_t> allow_uids = {0};
  std::vector<gid_t> allow_gids;
  // Connections one uid may hold open on the Unix socket; more are closed at accept.
  int max_connections_per_uid = 256;
  // "host:port" (port 0 picks one); requires all three TLS files.
  std::string tcp_address;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string journal_path = "/var/lib/ucoded/journal.sqlite";
  RequestLimits limits;
};

// One ucoded per journal: checks the journal's directory is private (private_files.h) and
// takes `<journal>.lock`. FAILED_PRECONDITION naming the running instance's pid. Taken
// before anything else, so a second instance changes nothing (":memory:": no lock).
absl::StatusOr<std::unique_ptr<InstanceLock>> LockJournal(const std::string& journal_path);

class Daemon {
 public:
  // Validates the options (TCP without the three TLS files is FAILED_PRECONDITION: the
  // daemon never listens on TCP in the clear), recovers the journal (calling the runner's
  // ConfirmGuestsRunning for interrupted operations), then starts serving. `runner`
  // outlives the daemon. `journal_lock` is LockJournal's, when the caller took it before
  // building the runner; null: Start takes it first.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      const DaemonOptions& options, UpdateRunner* runner,
      std::unique_ptr<InstanceLock> journal_lock = nullptr);
  ~Daemon();  // Shutdown(zero grace)
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Stops accepting, lets calls finish for `grace`, waits for a running operation (it is
  // cancelled if it has not reached its rendezvous). Idempotent.
  void Shutdown(absl::Duration grace);

  // The TCP port actually bound (when tcp_address ended in :0), or 0.
  [[nodiscard]] int tcp_port() const { return tcp_port_; }
  // A channel straight into the server, no socket and no credential check (tests).
  [[nodiscard]] std::shared_ptr<grpc::Channel> InProcessChannel();

 private:
  Daemon() = default;
  bool Allowed(const UnixListener::Peer& peer) const;
  void Admit(UniqueFd conn, const UnixListener::Peer& peer);

  DaemonOptions options_;
  std::unique_ptr<InstanceLock> journal_lock_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<OperationRegistry> registry_;
  std::unique_ptr<UcodeServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<UnixListener> listener_;
  int tcp_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_DAEMON_H_
