#include "vmm/ucodectl/client_channel.h"

#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "host/base/read_file.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"

namespace ucode::ctl {
namespace {

bool IsUnixAddress(const std::string& address) {
  return absl::StartsWith(address, "unix:") || absl::StartsWith(address, "/");
}

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view flag) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " is required for a TCP server (ucoded speaks mutual TLS)"));
  }
  absl::StatusOr<std::string> pem = ReadTextFile(path);
  if (!pem.ok())
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", pem.status().message()));
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const ClientTls& tls) {
  if (IsUnixAddress(address)) {
    std::string target = absl::StartsWith(address, "unix:") ? address : "unix:" + address;
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions ssl;
  ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem(tls.ca_file, "tls_ca"));
  ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPem(tls.cert_file, "tls_cert"));
  ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPem(tls.key_file, "tls_key"));
  grpc::ChannelArguments args;
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl), args);
}

std::optional<RemoteCall> StartRemote(const std::vector<std::string>& args,
                                      const CommandSyntax& syntax,
                                      const std::vector<OptionSpec>& specs, size_t positional,
                                      int* exit_status) {
  std::optional<ParsedArgs> parsed =
      ParseCommand(args, syntax, specs, positional, positional, exit_status);
  if (!parsed) return std::nullopt;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      MakeChannel(Globals().server, Globals().tls);
  if (!channel.ok()) {
    std::fprintf(stderr, "ucodectl: %s\n", std::string(channel.status().message()).c_str());
    *exit_status = kExitUsage;
    return std::nullopt;
  }
  return RemoteCall{*std::move(parsed), ucode::v1::UcodeService::NewStub(*channel)};
}

int RpcFailed(absl::string_view rpc, const grpc::Status& status) {
  std::fprintf(stderr, "ucodectl: %s: %s: %s\n", std::string(rpc).c_str(),
               absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())).c_str(),
               status.error_message().c_str());
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // ucoded closes a refused caller's connection unanswered (it holds nothing for them).
    std::fprintf(stderr,
                 "ucodectl: is ucoded running, and are you (uid or a group) in its "
                 "--allow_uids/--allow_gids? It closes other callers' connections at once.\n");
  }
  return kExitFailed;
}

bool FillImage(const RemoteCall& call, const std::string& path, ucode::v1::ImageSource* image) {
  if (call.args.Has("host-path")) {
    if (!IsUnixAddress(Globals().server)) {
      std::fprintf(stderr, "ucodectl: --host-path needs a unix: server on this host\n");
      return false;
    }
    // Absolute but with symlinks kept: the daemon matches it against its image roots as
    // written (/lib/firmware/intel-ucode stays that, even where /lib links to usr/lib).
    std::error_code ec;
    std::filesystem::path absolute = std::filesystem::absolute(path, ec);
    if (ec) {
      std::fprintf(stderr, "ucodectl: %s: %s\n", path.c_str(), ec.message().c_str());
      return false;
    }
    image->set_host_path(absolute.lexically_normal().string());
    return true;
  }
  // Type checked before open (a FIFO never blocks us), size bounded as the daemon bounds it.
  absl::StatusOr<std::vector<uint8_t>> bytes = microcode::ReadFileBytes(path, 16u << 20);
  if (!bytes.ok()) {
    std::fprintf(stderr, "ucodectl: %s\n", std::string(bytes.status().message()).c_str());
    return false;
  }
  image->set_image_bytes(std::string(bytes->begin(), bytes->end()));
  return true;
}

}  // namespace ucode::ctl
