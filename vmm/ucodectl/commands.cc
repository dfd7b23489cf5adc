#include "vmm/ucodectl/commands.h"

namespace ucode::ctl {

// Each subcommand's entry point, defined in its own <name>_command.cc.
// (Add a declaration here and a row below when adding a command.)

const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kCommands = {
  };
  return kCommands;
}

}  // namespace ucode::ctl
