// `ucodectl inspect PATH...`: lists every microcode image in the files (or directories,
// one level deep) given, with its validation verdict; `--cpu` adds what would be
// selected for that CPU and why every other image was not. Exit 0 only if every image
// of every file is valid.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"
#include "proto/json.h"
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
        {"json", false, false, "one JSON object per image instead of text lines"},
        {"cpu", true, false, kCpuOptionHelp},
        {"help", false, false, "this text"},
    };
    AppendMinRevOptionSpecs(specs);
    return specs;
  }();
  return kSpecs;
}

// One image (or unreadable member) found in the inputs.
struct Row {
  std::string path;
  size_t offset = 0;
  std::optional<mc::MicrocodeHeader> header;  // raw, even when invalid
  absl::StatusOr<mc::MicrocodeImage> image = absl::UnknownError("unset");
  std::optional<size_t> valid_index;  // into the images passed to SelectImage
  std::optional<mc::Candidate> candidate;
};

// Input bounds: the largest release file is 3.3 MB and the whole 20251111 release 16.7 MB;
// `inspect DIR` over a directory of huge files once took 2.2 GB for 921,600 "images".
constexpr size_t kMaxFileBytes = 16u << 20;
constexpr size_t kMaxTotalBytes = 64u << 20;
constexpr size_t kMaxFiles = 4096;

// A file's bytes must outlive the images that view them: `buffers` owns them.
struct Inputs {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<Row> rows;
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

Inputs Load(const std::vector<std::string>& paths) {
  Inputs in;
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
        return in;
      }
      absl::StatusOr<std::vector<uint8_t>> bytes = mc::ReadFileBytes(file, kMaxFileBytes);
      if (bytes.ok() && total + bytes->size() > kMaxTotalBytes) {
        in.errors.push_back(absl::StrCat("inputs over ", kMaxTotalBytes >> 20,
                                         " MiB in total: stopped at ", file));
        return in;
      }
      if (!bytes.ok()) {
        in.errors.push_back(std::string(bytes.status().message()));
        continue;
      }
      total += bytes->size();
      in.buffers.push_back(*std::move(bytes));
      const std::vector<uint8_t>& buf = in.buffers.back();
      if (buf.empty()) in.errors.push_back(absl::StrCat(file, ": empty file holds no image"));
      for (mc::BundleEntry& entry : mc::ParseBundle(buf)) {
        Row row;
        row.path = file;
        row.offset = entry.offset;
        row.header = mc::PeekHeader(absl::MakeConstSpan(buf).subspan(entry.offset));
        row.image = std::move(entry.image);
        in.rows.push_back(std::move(row));
      }
    }
  }
  return in;
}

std::string DateOf(const mc::MicrocodeHeader& h) {
  mc::MicrocodeImage tmp;
  tmp.header = h;
  return tmp.DateString();
}

size_t TotalSizeOf(const mc::MicrocodeHeader& h) {
  return h.data_size != 0 ? h.total_size : mc::kDefaultTotalSize;
}

std::string Verdict(const Row& r) {
  return r.image.ok() ? "valid" : absl::StrCat("INVALID: ", r.image.status().message());
}

std::string TextLine(const Row& r) {
  std::string line = absl::StrFormat("%s@0x%x", r.path, r.offset);
  if (r.header) {
    const mc::MicrocodeHeader& h = *r.header;
    absl::StrAppendFormat(&line, "  sig 0x%08x  pf 0x%02x  %s  rev 0x%08x  size %u  min_rev 0x%08x",
                          h.signature, h.platform_flags, DateOf(h), h.revision, TotalSizeOf(h),
                          h.min_req_revision);
  }
  if (r.image.ok()) {
    std::vector<std::string> ext;
    for (const mc::ExtendedSignature& e : r.image->extended_signatures) {
      ext.push_back(absl::StrFormat("0x%08x/0x%02x", e.signature, e.platform_flags));
    }
    absl::StrAppend(&line, "  ext ", ext.empty() ? "-" : absl::StrJoin(ext, ","));
  }
  absl::StrAppend(&line, "  ", Verdict(r));
  if (r.candidate) {
    absl::StrAppend(&line, "\n    ", r.candidate->selected ? "=> " : "-- ", r.candidate->reason);
  }
  return line;
}

std::string JsonLine(const Row& r, bool with_cpu) {
  std::string o = absl::StrFormat("{\"path\":%s,\"offset\":%u", JsonQuote(r.path), r.offset);
  if (r.header) {
    const mc::MicrocodeHeader& h = *r.header;
    absl::StrAppendFormat(&o,
                          ",\"signature\":\"0x%08x\",\"pf_mask\":\"0x%02x\",\"date\":\"%s\","
                          "\"revision\":\"0x%08x\",\"total_size\":%u,\"min_rev\":\"0x%08x\"",
                          h.signature, h.platform_flags, DateOf(h), h.revision, TotalSizeOf(h),
                          h.min_req_revision);
  }
  std::vector<std::string> ext;
  if (r.image.ok()) {
    for (const mc::ExtendedSignature& e : r.image->extended_signatures) {
      ext.push_back(absl::StrFormat("{\"signature\":\"0x%08x\",\"pf_mask\":\"0x%02x\"}",
                                    e.signature, e.platform_flags));
    }
  }
  absl::StrAppend(&o, ",\"extended_signatures\":[", absl::StrJoin(ext, ","), "]");
  absl::StrAppend(&o, ",\"valid\":", r.image.ok() ? "true" : "false");
  if (!r.image.ok()) absl::StrAppend(&o, ",\"error\":", JsonQuote(r.image.status().message()));
  if (with_cpu) {
    absl::StrAppend(&o, ",\"selected\":", r.candidate && r.candidate->selected ? "true" : "false",
                    ",\"reason\":", JsonQuote(r.candidate ? r.candidate->reason : ""));
  }
  return o + "}";
}

// Runs the selection over the valid images and attaches a candidate to every row.
void Select(Inputs& in, const mc::CpuIdentity& cpu, mc::MinRevPolicy policy) {
  std::vector<mc::MicrocodeImage> valid;
  for (Row& r : in.rows) {
    if (!r.image.ok()) {
      r.candidate = mc::Candidate{0, false, "not considered: image is invalid"};
      continue;
    }
    r.valid_index = valid.size();
    valid.push_back(*r.image);
  }
  mc::Selection s = mc::SelectImage(valid, cpu, policy);
  for (Row& r : in.rows) {
    if (r.valid_index) r.candidate = s.candidates[*r.valid_index];
  }
}

constexpr CommandSyntax kSyntax = {"inspect", "inspect [--json] [--cpu SIG[,PF[,REV]]] PATH...",
                                   ""};

}  // namespace

int RunInspect(const std::vector<std::string>& args) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, Specs());
  if (!parsed.ok()) return PrintUsage(kSyntax, Specs(), parsed.status().message());
  if (parsed->Has("help")) return PrintUsage(kSyntax, Specs(), "");
  if (parsed->positional().empty()) return PrintUsage(kSyntax, Specs(), "no PATH given");
  std::optional<mc::CpuIdentity> cpu;
  if (std::optional<std::string> text = parsed->Value("cpu")) {
    absl::StatusOr<mc::CpuIdentity> c = ParseCpuOption(*text);
    if (!c.ok()) return PrintUsage(kSyntax, Specs(), c.status().message());
    cpu = *c;
  }
  const bool json = parsed->Has("json");
  absl::StatusOr<mc::MinRevPolicy> min_rev = MinRevPolicyFromArgs(*parsed);
  if (!min_rev.ok()) return PrintUsage(kSyntax, Specs(), min_rev.status().message());
  const mc::MinRevPolicy policy = *min_rev;

  Inputs in = Load(parsed->positional());
  if (cpu) Select(in, *cpu, policy);
  bool all_valid = in.errors.empty();
  const mc::Candidate* chosen = nullptr;
  const Row* chosen_row = nullptr;
  for (const Row& r : in.rows) {
    all_valid &= r.image.ok();
    if (r.candidate && r.candidate->selected) {
      chosen = &*r.candidate;
      chosen_row = &r;
    }
    std::string line = json ? JsonLine(r, cpu.has_value()) : TextLine(r);
    std::fprintf(stdout, "%s\n", line.c_str());
  }
  for (const std::string& e : in.errors) std::fprintf(stderr, "ucodectl inspect: %s\n", e.c_str());
  if (cpu && !json) {
    std::string head = absl::StrFormat(
        "cpu sig 0x%08x (%s) pf 0x%02x revision 0x%08x, min-rev %s: ", cpu->signature,
        mc::FirmwareFileName(cpu->signature), 1u << cpu->platform_id, cpu->current_revision,
        policy == mc::MinRevPolicy::kEnforce ? "enforced" : "ignored");
    if (chosen != nullptr) {
      std::fprintf(stdout, "%sselect %s@0x%zx revision 0x%08x\n", head.c_str(),
                   chosen_row->path.c_str(), chosen_row->offset, chosen_row->image->revision());
    } else {
      std::fprintf(stdout, "%snothing to load\n", head.c_str());
    }
  }
  return all_valid ? kExitOk : kExitFailed;
}

}  // namespace ucode::ctl
