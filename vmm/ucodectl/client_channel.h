// What every `ucodectl --server ADDRESS COMMAND` shares: its channel to ucoded (a Unix
// socket, the default, where the daemon identifies us by SO_PEERCRED, or TCP, which is
// always mutual TLS), its RPC errors and the image it sends.
#ifndef UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_
#define UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"
#include "vmm/ucodectl/command_line.h"
#include "vmm/ucodectl/commands.h"

namespace ucode::ctl {

// "unix:/path" or "/path": Unix socket. "host:port": TCP with mutual TLS; all three TLS
// files are required (INVALID_ARGUMENT naming the missing one otherwise).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address,
                                                           const ClientTls& tls);

// A remote command's words parsed, and a stub on the channel to Globals().server.
struct RemoteCall {
  ParsedArgs args;
  std::unique_ptr<ucode::v1::UcodeService::Stub> stub;
};

// ParseCommand, then the channel to Globals().server. nullopt after printing the usage or the
// channel's error, with the exit status in `exit_status`.
std::optional<RemoteCall> StartRemote(const std::vector<std::string>& args,
                                      const CommandSyntax& syntax,
                                      const std::vector<OptionSpec>& specs, size_t positional,
                                      int* exit_status);

// Prints "ucodectl: RPC: CODE: message" (and what UNAVAILABLE usually means); kExitFailed.
int RpcFailed(absl::string_view rpc, const grpc::Status& status);

// One unary RPC of `r.stub`: its answer with --json through PrintJson (kExitOk), else
// through `print_text`, which returns the exit status.
template <typename Request, typename Response>
int CallAndPrint(const RemoteCall& r, absl::string_view name,
                 grpc::Status (ucode::v1::UcodeService::Stub::*rpc)(grpc::ClientContext*,
                                                                    const Request&, Response*),
                 const Request& request, int (*print_text)(const Response&)) {
  grpc::ClientContext ctx;
  Response response;
  grpc::Status status = (r.stub.get()->*rpc)(&ctx, request, &response);
  if (!status.ok()) return RpcFailed(name, status);
  if (!r.args.Has("json")) return print_text(response);
  PrintJson(response);
  return kExitOk;
}

inline const OptionSpec kHostPathOption = {
    "host-path", false, false,
    "send the file's path (under ucoded's --image_root) instead of its bytes"};

// The image at `path` into `image`: its bytes, or with --host-path (Unix socket only) its
// path, which ucoded reads only beneath its image roots. False after printing why not.
bool FillImage(const RemoteCall& call, const std::string& path, ucode::v1::ImageSource* image);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_CLIENT_CHANNEL_H_
