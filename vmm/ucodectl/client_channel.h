// Channels from ucodectl to ucoded. A Unix socket (the default, same host: the daemon
// identifies us by SO_PEERCRED) or TCP, which is always mutual TLS.
#ifndef UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_
#define UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace ucode::ctl {

inline constexpr char kDefaultServer[] = "unix:/run/ucoded/ucoded.sock";

struct ClientTls {
  std::string ca_file;    // CA that signed ucoded's certificate
  std::string cert_file;  // our client certificate
  std::string key_file;
  std::string server_name;  // expected name in ucoded's certificate (default: the host)
};

// "unix:/path" or "/path": Unix socket. "host:port": TCP with mutual TLS; all three TLS
// files are required (INVALID_ARGUMENT naming the missing one otherwise).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const ClientTls& tls);

// True when `address` names a Unix socket (so the daemon shares our filesystem).
bool IsUnixAddress(const std::string& address);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_
