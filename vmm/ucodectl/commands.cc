#include "vmm/ucodectl/commands.h"

#include <cstdio>

#include "absl/status/statusor.h"

namespace ucode::ctl {

// Each subcommand's entry points, defined in its own file.
// (Add a declaration here and a row below when adding a command.)
int RunInspect(const std::vector<std::string>& args);
int RunStage(const std::vector<std::string>& args);
int RunLoad(const std::vector<std::string>& args);
int RunDemo(const std::vector<std::string>& args);
int RunApply(const std::vector<std::string>& args);
// Through ucoded: remote_query_commands.cc and remote_operation_commands.cc.
int RunRemoteDescribe(const std::vector<std::string>& args);
int RunRemoteGuests(const std::vector<std::string>& args);
int RunRemoteInspect(const std::vector<std::string>& args);
int RunRemoteStage(const std::vector<std::string>& args);
int RunRemoteApply(const std::vector<std::string>& args);
int RunRemoteSyncViews(const std::vector<std::string>& args);
int RunRemoteWatch(const std::vector<std::string>& args);
int RunRemoteGet(const std::vector<std::string>& args);
int RunRemoteList(const std::vector<std::string>& args);
int RunRemoteCancel(const std::vector<std::string>& args);

namespace {

using RunCommand = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;  // one line for `ucodectl help`
  RunCommand local;     // null: only through ucoded
  RunCommand remote;    // null: only on this host
};

// In the order `ucodectl help` lists them.
const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kCommands = {
      {"demo", "the whole update on an emulated host with real KVM VMs", RunDemo, nullptr},
      {"inspect", "list and validate microcode images", RunInspect, RunRemoteInspect},
      {"stage", "push an image through every package's staging mailbox", RunStage, RunRemoteStage},
      {"load", "validate, stage, late-load and verify an image on this host", RunLoad, nullptr},
      {"apply", "the update around libvirt domains (-c URI, --domain/--all), or ucoded's guests",
       RunApply, RunRemoteApply},
      {"describe", "the host's CPUs and revisions", nullptr, RunRemoteDescribe},
      {"guests", "the guests ucoded manages", nullptr, RunRemoteGuests},
      {"sync-views", "set lagging guest views to the host's revision", nullptr, RunRemoteSyncViews},
      {"watch", "follow an operation's events until it is done", nullptr, RunRemoteWatch},
      {"get", "one operation's state", nullptr, RunRemoteGet},
      {"list", "the operations ucoded keeps", nullptr, RunRemoteList},
      {"cancel", "cancel an operation before its rendezvous", nullptr, RunRemoteCancel},
  };
  return kCommands;
}

GlobalOptions& MutableGlobals() {
  static GlobalOptions globals;
  return globals;
}

const std::vector<OptionSpec>& GlobalSpecs() {
  static const std::vector<OptionSpec> kSpecs = {
      {"connect", true, false, "libvirt connection for commands that reach libvirt domains", 'c'},
      {"server", true, false,
       "through ucoded: unix:/run/ucoded/ucoded.sock (its socket) or host:port (mutual TLS)"},
      {"tls_ca", true, false, "TCP server: the CA that signed ucoded's certificate"},
      {"tls_cert", true, false, "TCP server: our client certificate"},
      {"tls_key", true, false, "TCP server: our client certificate's key"},
      {"tls_server_name", true, false, "TCP server: the name in its certificate (default: host)"},
      {"help", false, false, "this text", 'h'},
  };
  return kSpecs;
}

int PrintHelp(absl::string_view error) {
  FILE* out = error.empty() ? stdout : stderr;
  if (!error.empty()) std::fprintf(out, "ucodectl: %s\n", std::string(error).c_str());
  std::fprintf(out,
               "usage: ucodectl [-c URI] COMMAND [ARGS...]\n"
               "       ucodectl --server ADDRESS [--tls_ca F --tls_cert F --tls_key F "
               "[--tls_server_name N]] COMMAND [ARGS...]\n\nglobal options:\n%s\n"
               "commands (where they run: on this host, through ucoded with --server, or both):\n",
               OptionsHelp(GlobalSpecs()).c_str());
  for (const Command& c : AllCommands()) {
    const char* where = c.remote == nullptr ? "host" : c.local == nullptr ? "server" : "both";
    std::fprintf(out, "  %-10s %-6s %s\n", c.name, where, c.summary);
  }
  std::fprintf(out, "\n`ucodectl [--server ADDRESS] COMMAND --help` describes one command.\n");
  return error.empty() ? kExitOk : kExitUsage;
}

}  // namespace

const GlobalOptions& Globals() { return MutableGlobals(); }

int RunUcodectl(const std::vector<std::string>& words) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(words, GlobalSpecs(), /*stop_at_positional=*/true);
  if (!parsed.ok()) return PrintHelp(parsed.status().message());
  if (parsed->Has("help")) return PrintHelp("");
  const std::vector<std::string>& rest = parsed->positional();
  if (rest.empty()) return PrintHelp("no COMMAND given");
  if (rest[0] == "help") return PrintHelp("");
  GlobalOptions& globals = MutableGlobals();
  globals.connect_uri = parsed->ValueOr("connect", "");
  globals.server = parsed->ValueOr("server", "");
  globals.tls = {parsed->ValueOr("tls_ca", ""), parsed->ValueOr("tls_cert", ""),
                 parsed->ValueOr("tls_key", ""), parsed->ValueOr("tls_server_name", "")};
  const std::vector<std::string> args(rest.begin() + 1, rest.end());
  for (const Command& c : AllCommands()) {
    if (rest[0] != c.name) continue;
    RunCommand run = globals.server.empty() ? c.local : c.remote;
    if (run != nullptr) return run(args);
    std::fprintf(stderr, "ucodectl: %s %s\n", c.name,
                 globals.server.empty() ? "goes through ucoded: give --server ADDRESS"
                                        : "acts on this host only: drop --server");
    return kExitUsage;
  }
  return PrintHelp("unknown command '" + rest[0] + "'");
}

}  // namespace ucode::ctl
