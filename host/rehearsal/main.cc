// ucode-rehearsal: checks a microcode release against every CPU SKU of a fleet on the
// emulated host (rehearsal.h), prints the per-SKU table and writes the JSON report.
// The program behind ucode_rehearsal_test (rehearsal.bzl); usable on its own:
//
//   ucode-rehearsal --fleet FLEET [--json FILE] [--expect-failure TEXT]
//                   --images PATH... [--baseline PATH...]
//
// Exit 0 when every SKU passes (with --expect-failure: when the rehearsal fails and one
// failure contains TEXT), 1 otherwise, 2 on bad usage.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "host/base/unique_fd.h"
#include "host/rehearsal/fleet.h"
#include "host/rehearsal/image_set.h"
#include "host/rehearsal/rehearsal.h"
#include "host/rehearsal/report.h"

namespace ucode::rehearsal {
namespace {

constexpr char kUsage[] =
    "usage: ucode-rehearsal --fleet FLEET [--json FILE] [--expect-failure TEXT]\n"
    "                       --images PATH... [--baseline PATH...]\n";

struct Args {
  std::string fleet;
  std::string json;
  std::optional<std::string> expect_failure;
  std::vector<std::string> images;
  std::vector<std::string> baseline;
};

std::optional<Args> ParseArgs(int argc, char** argv) {
  Args args;
  std::vector<std::string>* list = nullptr;  // where bare paths go
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    if (a == "--images") {
      list = &args.images;
    } else if (a == "--baseline") {
      list = &args.baseline;
    } else if (a == "--fleet") {
      if (!value(args.fleet)) return std::nullopt;
    } else if (a == "--json") {
      if (!value(args.json)) return std::nullopt;
    } else if (a == "--expect-failure") {
      std::string text;
      if (!value(text) || text.empty()) return std::nullopt;
      args.expect_failure = text;
    } else if (absl::StartsWith(a, "--") || list == nullptr) {
      return std::nullopt;
    } else {
      list->push_back(a);
    }
  }
  if (args.fleet.empty() || args.images.empty()) return std::nullopt;
  return args;
}

bool WriteJson(const std::string& path, const std::string& json) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  std::string text = json + "\n";
  size_t done = 0;
  while (fd && done < text.size()) {
    ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  if (done == text.size()) return true;
  std::fprintf(stderr, "ucode-rehearsal: write %s: %s\n", path.c_str(), std::strerror(errno));
  return false;
}

// With --expect-failure the test passes only if the rehearsal failed for the reason given.
int ExpectedFailureVerdict(const RehearsalReport& report, const std::string& text) {
  absl::StatusOr<std::string> seen = FindExpectedFailure(report, text);
  if (!seen.ok()) {
    std::printf("%s\n", std::string(seen.status().message()).c_str());
    return 1;
  }
  std::printf("expected failure seen: %s\n", seen->c_str());
  return 0;
}

int Run(int argc, char** argv) {
  std::optional<Args> args = ParseArgs(argc, argv);
  if (!args) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  absl::StatusOr<std::vector<FleetSku>> fleet = LoadFleet(args->fleet);
  if (!fleet.ok()) {
    std::fprintf(stderr, "ucode-rehearsal: %s\n", std::string(fleet.status().message()).c_str());
    return 1;
  }
  ImageSet release = ImageSet::Load(args->images);
  std::optional<ImageSet> baseline;
  if (!args->baseline.empty()) baseline = ImageSet::Load(args->baseline);
  RehearsalReport report = Rehearse(release, baseline ? &*baseline : nullptr, *fleet);
  std::fputs(ReportTable(report).c_str(), stdout);

  std::string json_path = args->json;
  if (const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR"); json_path.empty() && dir) {
    json_path = absl::StrCat(dir, "/rehearsal.json");
  }
  const bool written = json_path.empty() || WriteJson(json_path, ReportJson(report));
  if (args->expect_failure) return written ? ExpectedFailureVerdict(report, *args->expect_failure) : 1;
  return written && report.ok() ? 0 : 1;
}

}  // namespace
}  // namespace ucode::rehearsal

int main(int argc, char** argv) { return ucode::rehearsal::Run(argc, argv); }
