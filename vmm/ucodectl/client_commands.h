// ucodectl's client mode: `ucodectl --server ADDRESS [TLS options] COMMAND [ARGS...]` does
// everything through ucoded's gRPC API (ucode.v1) instead of touching the host itself.
#ifndef UCODE_VMM_UCODECTL_CLIENT_COMMANDS_H_
#define UCODE_VMM_UCODECTL_CLIENT_COMMANDS_H_

#include <cstdio>
#include <string>
#include <vector>

#include "proto/ucode/v1/ucoded.grpc.pb.h"

namespace ucode::ctl {

// True when ucodectl's first argument asks for client mode ("--server" or "--server=...").
bool WantsServer(const std::vector<std::string>& args);

// `args` are the words after "ucodectl", starting with --server. Returns the exit status:
// 0 success, 1 the call or the operation failed, 2 bad usage.
int RunRemote(const std::vector<std::string>& args);

// Streams `operation`'s events to `out` until it is done; 0 if it SUCCEEDED, else 1. The
// final state goes to `final_state` when given (the caller prints it), else to `out`.
int FollowOperation(ucode::v1::UcodeService::StubInterface& stub, const std::string& operation,
                    FILE* out, ucode::v1::Operation* final_state = nullptr);

// The usage text of client mode.
std::string RemoteUsage();

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_CLIENT_COMMANDS_H_
