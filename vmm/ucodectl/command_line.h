// A small, strict command-line parser for ucodectl's subcommands. Each subcommand
// declares the options it takes; anything else is an error naming the option. We do not
// use absl flags here because they are process-global and every subcommand would see
// every other one's flags.
#ifndef UCODE_VMM_UCODECTL_COMMAND_LINE_H_
#define UCODE_VMM_UCODECTL_COMMAND_LINE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace ucode::ctl {

// Process exit status of every subcommand: 0 success, 1 the operation failed or found a
// problem, 2 bad usage (virsh's convention).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

struct OptionSpec {
  std::string name;  // without the leading "--", e.g. "json"
  bool takes_value;  // --name VALUE or --name=VALUE; otherwise a switch
  bool repeatable = false;
  std::string help;     // one line, for the subcommand's usage text
  char short_name = 0;  // e.g. 'c' for -c URI (virsh convention)
};

class ParsedArgs {
 public:
  [[nodiscard]] bool Has(absl::string_view name) const;
  // Last value given for an option, if any.
  [[nodiscard]] std::optional<std::string> Value(absl::string_view name) const;
  [[nodiscard]] std::string ValueOr(absl::string_view name, absl::string_view fallback) const;
  // Every value given for a repeatable option, in order.
  [[nodiscard]] std::vector<std::string> Values(absl::string_view name) const;
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                              const std::vector<OptionSpec>& specs,
                                              bool stop_at_positional);
  std::map<std::string, std::vector<std::string>, std::less<>> values_;
  std::vector<std::string> positional_;
};

// Parses `args` (the words after the subcommand name). "--" ends option parsing, and so
// does the first positional word with `stop_at_positional` (ucodectl's global options: the
// subcommand's name and words are the positionals then).
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& specs,
                                     bool stop_at_positional = false);

inline const OptionSpec kHelpOption = {"help", false, false, "this text"};

// "  --name VALUE   help" lines for a usage message.
std::string OptionsHelp(const std::vector<OptionSpec>& specs);

// What a subcommand's usage text says about it.
struct CommandSyntax {
  const char* name;         // "stage"
  const char* synopsis;     // after "usage: ucodectl ": "stage IMAGE [options]"
  const char* description;  // optional lines after the synopsis; may be empty
};

// With an empty `error` (the --help case) prints the usage to stdout and returns kExitOk;
// otherwise prints "ucodectl NAME: error" and the usage to stderr and returns kExitUsage.
int PrintUsage(const CommandSyntax& syntax, const std::vector<OptionSpec>& specs,
               absl::string_view error);

// ParseArgs for a subcommand, with its usage printed on `--help` (kHelpOption in `specs`), a
// bad option, or a count of positional words outside [min_positional, max_positional] (max
// is min, or SIZE_MAX for no bound):
// nullopt then, with PrintUsage's exit status in `exit_status`.
std::optional<ParsedArgs> ParseCommand(const std::vector<std::string>& args,
                                       const CommandSyntax& syntax,
                                       const std::vector<OptionSpec>& specs, size_t min_positional,
                                       size_t max_positional, int* exit_status);

// Every --json: the message through protobuf's JSON printer, with the .proto field names.
void PrintJson(const google::protobuf::Message& message);

// A failed operation: with --json a ucode.v1.UpdateReport saying ok false and the error on
// stdout (so a machine reading stdout always gets one object), else "ucodectl NAME:
// message" on stderr.
// Returns kExitFailed.
int ReportFailure(absl::string_view command, bool json, const absl::Status& status);

}  // namespace ucode::ctl

#endif  // UCODE_VMM_UCODECTL_COMMAND_LINE_H_
