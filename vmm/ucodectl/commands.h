// ucodectl's subcommands, in one table (commands.cc). Each lives in its own file and returns
// the process exit status (kExitOk, kExitFailed, kExitUsage: command_line.h). A command may
// act on this host itself, go through ucoded's gRPC API when `--server ADDRESS` is given, or
// both.
#ifndef UCODE_VMM_UCODECTL_COMMANDS_H_
#define UCODE_VMM_UCODECTL_COMMANDS_H_

#include <string>
#include <vector>

#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

// How ucodectl reaches a TCP server (ucoded speaks mutual TLS there).
struct ClientTls {
  std::string ca_file;    // CA that signed ucoded's certificate
  std::string cert_file;  // our client certificate
  std::string key_file;
  std::string server_name;  // expected name in ucoded's certificate (default: the host)
};

// Options given before the subcommand, as virsh takes them (`ucodectl -c URI apply ...`).
struct GlobalOptions {
  std::string connect_uri;  // -c / --connect: libvirt URI; empty means the command's default
  std::string server;       // --server: ucoded's address; empty means act on this host
  ClientTls tls;            // --tls_*: for a TCP server
};
const GlobalOptions& Globals();

// ucodectl itself: `words` are its arguments (after argv[0]). Returns the exit status.
int RunUcodectl(const std::vector<std::string>& words);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_COMMANDS_H_
