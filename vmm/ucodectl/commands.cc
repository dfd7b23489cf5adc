#include "vmm/ucodectl/commands.h"

#include <utility>

namespace ucode::ctl {

// Each subcommand's entry point, defined in its own <name>_command.cc.
// (Add a declaration here and a row below when adding a command.)
int RunInspect(const std::vector<std::string>& args);
int RunStage(const std::vector<std::string>& args);
int RunLoad(const std::vector<std::string>& args);
int RunDemo(const std::vector<std::string>& args);
int RunApply(const std::vector<std::string>& args);

namespace {
GlobalOptions& MutableGlobals() {
  static GlobalOptions globals;
  return globals;
}
}  // namespace

const GlobalOptions& Globals() { return MutableGlobals(); }
void SetGlobals(GlobalOptions options) { MutableGlobals() = std::move(options); }

const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kCommands = {
      {"demo", "the whole update on an emulated host with real KVM VMs", RunDemo},
      {"inspect", "list and validate microcode images", RunInspect},
      {"stage", "push an image through every package's staging mailbox", RunStage},
      {"load", "validate, stage, late-load and verify an image on this host", RunLoad},
      {"apply", "the update around libvirt domains (-c URI, --domain/--all)", RunApply},
  };
  return kCommands;
}

}  // namespace ucode::ctl
