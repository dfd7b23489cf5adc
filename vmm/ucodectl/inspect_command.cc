// `ucodectl inspect PATH...`: lists every microcode image in the files (or directories,
// one level deep) given, with its validation verdict; `--cpu` adds what would be
// selected for that CPU and why every other image was not (vmm/inspect builds and prints
// the same message ucoded's InspectImage returns). Exit 0 only if every image of every
// file is valid.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"
#include "vmm/inspect/image_inspect.h"
#include "vmm/ucodectl/command_line.h"
#include "vmm/ucodectl/commands.h"
#include "vmm/ucodectl/cpu_option.h"
#include "vmm/ucodectl/min_rev_option.h"

namespace ucode::ctl {
namespace {

namespace mc = ::ucode::microcode;

const std::vector<OptionSpec>& Specs() {
  static const std::vector<OptionSpec> kSpecs = [] {
    std::vector<OptionSpec> specs = {
        {"json", false, false, "the images and the selection as one JSON object"},
        {"cpu", true, false, kCpuOptionHelp},
        kHelpOption,
    };
    AppendMinRevOptionSpecs(specs);
    return specs;
  }();
  return kSpecs;
}

// Input bounds: the largest release file is 3.3 MB and the whole 20251111 release 16.7 MB;
// `inspect DIR` over a directory of huge files once took 2.2 GB for 921,600 "images".
constexpr size_t kMaxFileBytes = 16u << 20;
constexpr size_t kMaxTotalBytes = 64u << 20;
constexpr size_t kMaxFiles = 4096;

// The files read, in order. `buffers` owns the bytes the `files` view (a vector moved as
// `buffers` grows keeps its heap buffer).
struct Inputs {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<inspect::ImageFile> files;
  std::vector<std::string> errors;  // unreadable paths
};

absl::StatusOr<std::vector<std::string>> ExpandPath(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    if (files.size() == kMaxFiles) {
      return absl::ResourceExhaustedError(
          absl::StrCat("list ", path, ": more than ", kMaxFiles, " files"));
    }
    files.push_back(entry.path().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("list ", path, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

void Load(const std::vector<std::string>& paths, Inputs& in) {
  size_t total = 0, count = 0;
  for (const std::string& arg : paths) {
    absl::StatusOr<std::vector<std::string>> files = ExpandPath(arg);
    if (!files.ok()) {
      in.errors.push_back(std::string(files.status().message()));
      continue;
    }
    for (const std::string& file : *files) {
      if (++count > kMaxFiles) {
        in.errors.push_back(absl::StrCat("more than ", kMaxFiles, " files: stopped before ", file));
        return;
      }
      absl::StatusOr<std::vector<uint8_t>> bytes = mc::ReadFileBytes(file, kMaxFileBytes);
      if (bytes.ok() && total + bytes->size() > kMaxTotalBytes) {
        in.errors.push_back(
            absl::StrCat("inputs over ", kMaxTotalBytes >> 20, " MiB in total: stopped at ", file));
        return;
      }
      if (!bytes.ok()) {
        in.errors.push_back(std::string(bytes.status().message()));
        continue;
      }
      total += bytes->size();
      if (bytes->empty()) in.errors.push_back(absl::StrCat(file, ": empty file holds no image"));
      in.buffers.push_back(*std::move(bytes));
      in.files.push_back({file, in.buffers.back()});
    }
  }
}

constexpr CommandSyntax kSyntax = {"inspect", "inspect [--json] [--cpu SIG[,PF[,REV]]] PATH...",
                                   ""};

}  // namespace

int RunInspect(const std::vector<std::string>& args) {
  int rc = kExitOk;
  std::optional<ParsedArgs> parsed =
      ParseCommand(args, kSyntax, Specs(), 1, std::numeric_limits<size_t>::max(), &rc);
  if (!parsed) return rc;
  std::optional<mc::CpuIdentity> cpu;
  if (std::optional<std::string> text = parsed->Value("cpu")) {
    absl::StatusOr<mc::CpuIdentity> c = ParseCpuOption(*text);
    if (!c.ok()) return PrintUsage(kSyntax, Specs(), c.status().message());
    cpu = *c;
  }
  absl::StatusOr<mc::MinRevPolicy> policy = MinRevPolicyFromArgs(*parsed);
  if (!policy.ok()) return PrintUsage(kSyntax, Specs(), policy.status().message());

  Inputs in;
  Load(parsed->positional(), in);
  const ucode::v1::InspectImageResponse response =
      inspect::InspectImages(in.files, cpu ? &*cpu : nullptr, *policy, "");
  if (parsed->Has("json")) {
    PrintJson(response);
  } else {
    std::fputs(inspect::InspectText(response).c_str(), stdout);
  }
  for (const std::string& e : in.errors) std::fprintf(stderr, "ucodectl inspect: %s\n", e.c_str());
  return in.errors.empty() && inspect::AllValid(response) ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
