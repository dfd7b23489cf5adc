// ucodectl: the operator's command line for ucode.
#include <cstdio>
#include <string>
#include <vector>

#include "vmm/ucodectl/commands.h"

namespace ucode::ctl {
namespace {

void PrintHelp(FILE* out) {
  std::fprintf(out, "usage: ucodectl COMMAND [ARGS...]\n\ncommands:\n");
  for (const Command& c : AllCommands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\n`ucodectl COMMAND --help` describes one command.\n");
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  std::string name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") {
    PrintHelp(stdout);
    return kExitOk;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const Command& c : AllCommands()) {
    if (name == c.name) return c.run(args);
  }
  std::fprintf(stderr, "ucodectl: unknown command '%s'\n", name.c_str());
  PrintHelp(stderr);
  return kExitUsage;
}

}  // namespace
}  // namespace ucode::ctl

int main(int argc, char** argv) { return ucode::ctl::Main(argc, argv); }
