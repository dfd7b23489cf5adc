#include "vmm/daemon/daemon.h"

#include <algorithm>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_posix.h"
#include "host/base/read_file.h"
#include "host/base/status_macros.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon {
namespace {

// Headroom over the image limit for the rest of a request message.
constexpr int kMessageOverhead = 64 << 10;

absl::StatusOr<std::string> ReadText(const std::string& path, absl::string_view what) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok())
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", text.status().message()));
  return text;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(
    const DaemonOptions& o) {
  if (o.tls_cert_file.empty() || o.tls_key_file.empty() || o.tls_client_ca_file.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "TCP address ", o.tcp_address,
        " needs mutual TLS: --tls_cert, --tls_key and --tls_client_ca must all be set "
        "(ucoded never listens on TCP without them)"));
  }
  grpc::SslServerCredentialsOptions ssl(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  grpc::SslServerCredentialsOptions::PemKeyCertPair& pair = ssl.pem_key_cert_pairs.emplace_back();
  ASSIGN_OR_RETURN(pair.cert_chain, ReadText(o.tls_cert_file, "--tls_cert"));
  ASSIGN_OR_RETURN(pair.private_key, ReadText(o.tls_key_file, "--tls_key"));
  ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadText(o.tls_client_ca_file, "--tls_client_ca"));
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<InstanceLock>> LockJournal(const std::string& journal_path) {
  if (journal_path == ":memory:") return std::unique_ptr<InstanceLock>();
  RETURN_IF_ERROR(EnsurePrivateDir(DirOf(journal_path), "journal directory"));
  return InstanceLock::Acquire(journal_path + ".lock", "journal");
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options,
                                                      UpdateRunner* runner,
                                                      std::unique_ptr<InstanceLock> journal_lock) {
  std::unique_ptr<Daemon> d(new Daemon());
  d->options_ = options;
  if (journal_lock == nullptr) {
    ASSIGN_OR_RETURN(journal_lock, LockJournal(options.journal_path));
  }
  d->journal_lock_ = std::move(journal_lock);
  std::shared_ptr<grpc::ServerCredentials> tls;
  if (!options.tcp_address.empty()) {
    ASSIGN_OR_RETURN(tls, TlsCredentials(options));
  }
  if (options.unix_socket.empty() && options.tcp_address.empty()) {
    LogLine("warning", {{"message", "no --socket and no --tcp: serving in-process only"}});
  }
  ASSIGN_OR_RETURN(d->journal_, Journal::Open(options.journal_path));
  d->registry_ = std::make_unique<OperationRegistry>(d->journal_.get());
  RETURN_IF_ERROR(d->registry_->Recover(
      [runner](const InterruptedOperation& op) { return runner->ConfirmGuestsRunning(op); }));
  d->service_ =
      std::make_unique<UcodeServiceImpl>(runner, d->registry_.get(), options.limits);

  grpc::ServerBuilder builder;
  builder.RegisterService(d->service_.get());
  // gRPC buffers a whole request before its handler runs, so the ImageBudget alone does not
  // bound memory: 30 concurrent 16 MiB InspectImage calls peaked at 0.6-1.0 GB. Twice the
  // budget for gRPC's own buffers held the peak to ~0.36 GB; past it gRPC refuses streams
  // (RESOURCE_EXHAUSTED) or closes busy connections (GOAWAY: UNAVAILABLE, retried).
  grpc::ResourceQuota quota("ucoded");
  quota.Resize(2 * options.limits.max_image_bytes_in_flight);
  builder.SetResourceQuota(quota);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(options.limits.max_image_bytes + kMessageOverhead,
                                        INT32_MAX)));
  if (tls != nullptr) builder.AddListeningPort(options.tcp_address, tls, &d->tcp_port_);
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr || (tls != nullptr && d->tcp_port_ == 0)) {
    return absl::UnavailableError(
        absl::StrCat("gRPC server did not start (TCP address '", options.tcp_address, "')"));
  }

  if (!options.unix_socket.empty()) {
    ASSIGN_OR_RETURN(d->listener_,
                     UnixListener::Listen(options.unix_socket, options.unix_socket_mode));
    Daemon* self = d.get();
    d->listener_->Start([self](UniqueFd conn, const UnixListener::Peer& peer) {
      self->Admit(std::move(conn), peer);
    });
  }
  LogLine("ucoded_started",
          {{"socket", options.unix_socket},
           {"allow_uids", absl::StrJoin(options.allow_uids, ",")},
           {"allow_gids", absl::StrJoin(options.allow_gids, ",")},
           {"max_connections_per_uid", absl::StrCat(options.max_connections_per_uid)},
           {"tcp", options.tcp_address.empty() ? "off" : absl::StrCat("mtls:", d->tcp_port_)},
           {"journal", options.journal_path},
           {"image_roots", absl::StrJoin(options.limits.image_roots, ",")}});
  return d;
}

bool Daemon::Allowed(const UnixListener::Peer& peer) const {
  auto allowed_gid = [this](gid_t gid) { return absl::c_linear_search(options_.allow_gids, gid); };
  return absl::c_linear_search(options_.allow_uids, peer.cred.uid) || allowed_gid(peer.cred.gid) ||
         absl::c_any_of(peer.groups, allowed_gid);
}

void Daemon::Admit(UniqueFd conn, const UnixListener::Peer& peer) {
  // A refused caller holds nothing: the connection closes here, before gRPC sees it (a
  // server answering PERMISSION_DENIED kept each open for as long as the caller liked,
  // and 2,000 of them used up the descriptors root's calls needed).
  const char* refusal = nullptr;
  if (!Allowed(peer)) {
    refusal = "not in the allow list (--allow_uids, --allow_gids)";
  } else if (listener_->ConnectionsFrom(peer.cred.uid) > options_.max_connections_per_uid) {
    refusal = "uid over its connection cap (--max_connections_per_uid)";
  }
  if (refusal != nullptr) {
    LogLine("caller_refused", {{"pid", absl::StrCat(peer.cred.pid)},
                               {"uid", absl::StrCat(peer.cred.uid)},
                               {"gid", absl::StrCat(peer.cred.gid)},
                               {"groups", absl::StrJoin(peer.groups, ",")},
                               {"reason", refusal}});
    return;
  }
  // gRPC owns the fd from here on.
  grpc::AddInsecureChannelFromFd(server_.get(), conn.Release());
}

std::shared_ptr<grpc::Channel> Daemon::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void Daemon::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  // Also reached from a half-built daemon whose Start failed: every part may be missing.
  if (listener_ != nullptr) listener_->Stop();
  // Ends watch streams and cancels a not-yet-parked operation, so Server::Shutdown below
  // is not held up by handlers waiting for events that will never come.
  if (service_ != nullptr) service_->Shutdown();
  auto now = std::chrono::system_clock::now();
  if (server_ != nullptr) server_->Shutdown(now + absl::ToChronoMilliseconds(grace));
  if (server_ != nullptr) server_->Wait();
  listener_.reset();
  if (server_ != nullptr) LogLine("ucoded_stopped", {});
}

Daemon::~Daemon() { Shutdown(absl::ZeroDuration()); }

}  // namespace ucode::daemon
