// ucodectl: the operator's command line for ucode.
//
//   ucodectl [-c URI] COMMAND [ARGS...]
//
// Global options come before the command, as virsh takes them.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "vmm/ucodectl/client_commands.h"
#include "vmm/ucodectl/commands.h"

namespace ucode::ctl {
namespace {

void PrintHelp(FILE* out) {
  std::fprintf(out,
               "usage: ucodectl [-c URI] COMMAND [ARGS...]\n"
               "       ucodectl --server ADDRESS [TLS options] COMMAND [ARGS...]\n\n"
               "global options:\n"
               "  -c, --connect URI   libvirt connection for commands that reach libvirt "
               "domains\n\ncommands:\n");
  for (const Command& c : AllCommands()) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\n`ucodectl COMMAND --help` describes one command.\n\n%s",
               RemoteUsage().c_str());
}

int Main(int argc, char** argv) {
  std::vector<std::string> words(argv + 1, argv + argc);
  GlobalOptions globals;
  size_t i = 0;
  for (; i < words.size() && absl::StartsWith(words[i], "-"); ++i) {
    const std::string& w = words[i];
    if (w == "-h" || w == "--help") {
      PrintHelp(stdout);
      return kExitOk;
    }
    // Client mode: everything goes through ucoded's gRPC API instead.
    if (w == "--server" || absl::StartsWith(w, "--server=")) {
      return RunRemote(std::vector<std::string>(words.begin() + i, words.end()));
    }
    if (w == "-c" || w == "--connect") {
      if (i + 1 == words.size()) {
        std::fprintf(stderr, "ucodectl: option %s needs a URI\n", w.c_str());
        return kExitUsage;
      }
      globals.connect_uri = words[++i];
    } else if (absl::StartsWith(w, "--connect=")) {
      globals.connect_uri = w.substr(sizeof("--connect=") - 1);
    } else {
      std::fprintf(stderr, "ucodectl: unknown global option %s\n", w.c_str());
      PrintHelp(stderr);
      return kExitUsage;
    }
  }
  if (i == words.size()) {
    PrintHelp(stderr);
    return kExitUsage;
  }
  const std::string& name = words[i];
  if (name == "help") {
    PrintHelp(stdout);
    return kExitOk;
  }
  SetGlobals(globals);
  std::vector<std::string> args(words.begin() + i + 1, words.end());
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
