#include "vmm/ucodectl/command_line.h"

#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/json.h"
#include "proto/ucode/v1/report.pb.h"

namespace ucode::ctl {

bool ParsedArgs::Has(absl::string_view name) const { return values_.find(name) != values_.end(); }

std::optional<std::string> ParsedArgs::Value(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string ParsedArgs::ValueOr(absl::string_view name, absl::string_view fallback) const {
  std::optional<std::string> v = Value(name);
  return v ? *v : std::string(fallback);
}

std::vector<std::string> ParsedArgs::Values(absl::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<OptionSpec>& specs,
                                     bool stop_at_positional) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positional_.insert(parsed.positional_.end(), args.begin() + i + 1, args.end());
      break;
    }
    const OptionSpec* spec = nullptr;
    std::optional<std::string> inline_value;
    if (absl::StartsWith(arg, "--")) {
      std::string name = arg.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
      }
      for (const OptionSpec& s : specs) {
        if (s.name == name) spec = &s;
      }
    } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      for (const OptionSpec& s : specs) {
        if (s.short_name != 0 && s.short_name == arg[1]) spec = &s;
      }
    } else if (stop_at_positional) {
      parsed.positional_.insert(parsed.positional_.end(), args.begin() + i, args.end());
      break;
    } else {
      parsed.positional_.push_back(arg);
      continue;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown option ", arg));
    std::vector<std::string>& slot = parsed.values_[spec->name];
    if (!slot.empty() && !spec->repeatable && spec->takes_value) {
      return absl::InvalidArgumentError(absl::StrCat("option --", spec->name, " given twice"));
    }
    if (!spec->takes_value) {
      if (inline_value) {
        return absl::InvalidArgumentError(absl::StrCat("option --", spec->name, " takes no value"));
      }
      slot.push_back("");
      continue;
    }
    if (inline_value) {
      slot.push_back(*inline_value);
    } else if (i + 1 < args.size()) {
      slot.push_back(args[++i]);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("option --", spec->name, " needs a value"));
    }
  }
  return parsed;
}

std::string OptionsHelp(const std::vector<OptionSpec>& specs) {
  std::string out;
  for (const OptionSpec& s : specs) {
    std::string left = s.short_name ? absl::StrFormat("-%c, --%s", s.short_name, s.name)
                                    : absl::StrCat("--", s.name);
    if (s.takes_value) absl::StrAppend(&left, " VALUE");
    absl::StrAppendFormat(&out, "  %-28s %s\n", left, s.help);
  }
  return out;
}

int PrintUsage(const CommandSyntax& syntax, const std::vector<OptionSpec>& specs,
               absl::string_view error) {
  FILE* out = error.empty() ? stdout : stderr;
  if (!error.empty()) {
    std::fprintf(out, "ucodectl %s: %s\n", syntax.name, std::string(error).c_str());
  }
  std::fprintf(out, "usage: ucodectl %s\n", syntax.synopsis);
  if (syntax.description != nullptr && syntax.description[0] != '\0') {
    std::fprintf(out, "%s\n", syntax.description);
  }
  std::fprintf(out, "%s", OptionsHelp(specs).c_str());
  return error.empty() ? kExitOk : kExitUsage;
}

std::optional<ParsedArgs> ParseCommand(const std::vector<std::string>& args,
                                       const CommandSyntax& syntax,
                                       const std::vector<OptionSpec>& specs, size_t min_positional,
                                       size_t max_positional, int* exit_status) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, specs);
  if (!parsed.ok()) {
    *exit_status = PrintUsage(syntax, specs, parsed.status().message());
  } else if (parsed->Has("help")) {
    *exit_status = PrintUsage(syntax, specs, "");
  } else if (size_t n = parsed->positional().size(); n < min_positional || n > max_positional) {
    *exit_status =
        PrintUsage(syntax, specs,
                   absl::StrCat("want ", min_positional == max_positional ? "" : "at least ",
                                min_positional, " arguments, got ", n));
  } else {
    return *std::move(parsed);
  }
  return std::nullopt;
}

void PrintJson(const google::protobuf::Message& message) {
  std::printf("%s\n", ProtoJson(message, /*indented=*/true).c_str());
}

int ReportFailure(absl::string_view command, bool json, const absl::Status& status) {
  if (json) {  // the update report of an operation that failed before it began
    ucode::v1::UpdateReport report;
    report.set_operation(std::string(command));
    report.set_error(std::string(status.message()));
    report.set_error_code(static_cast<int32_t>(status.code()));
    std::printf("%s\n", ProtoJson(report).c_str());
  } else {
    std::fprintf(stderr, "ucodectl %s: %s\n", std::string(command).c_str(),
                 std::string(status.message()).c_str());
  }
  return kExitFailed;
}

}  // namespace ucode::ctl
