#include "vmm/ucodectl/client_channel.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ucode::ctl {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is required for a TCP server (ucoded speaks mutual TLS)"));
  }
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool IsUnixAddress(const std::string& address) {
  return absl::StartsWith(address, "unix:") || absl::StartsWith(address, "/");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const ClientTls& tls) {
  if (IsUnixAddress(address)) {
    std::string target = absl::StartsWith(address, "unix:") ? address : "unix:" + address;
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  }
  absl::StatusOr<std::string> ca = ReadPem(tls.ca_file, "tls_ca");
  if (!ca.ok()) return ca.status();
  absl::StatusOr<std::string> cert = ReadPem(tls.cert_file, "tls_cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPem(tls.key_file, "tls_key");
  if (!key.ok()) return key.status();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ca;
  ssl.pem_cert_chain = *cert;
  ssl.pem_private_key = *key;
  grpc::ChannelArguments args;
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

}  // namespace ucode::ctl
