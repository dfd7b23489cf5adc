// The ucodectl subcommands. Each lives in its own file and returns the process exit
// status: 0 success, 1 the operation failed or found a problem, 2 bad usage.
#ifndef UCODE_VMM_UCODECTL_COMMANDS_H_
#define UCODE_VMM_UCODECTL_COMMANDS_H_

#include <string>
#include <vector>

#include "vmm/ucodectl/command_line.h"

namespace ucode::ctl {

struct Command {
  const char* name;
  const char* summary;  // one line for `ucodectl help`
  int (*run)(const std::vector<std::string>& args);
};

// Registered subcommands, in the order `ucodectl help` lists them.
const std::vector<Command>& AllCommands();

// Options given before the subcommand, as virsh takes them (`ucodectl -c URI apply ...`).
struct GlobalOptions {
  std::string connect_uri;  // -c / --connect: libvirt URI; empty means the command's default
};
const GlobalOptions& Globals();
// Set once by main() before the subcommand runs.
void SetGlobals(GlobalOptions options);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_COMMANDS_H_
