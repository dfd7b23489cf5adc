#include "host/microcode/release_dir.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ucode::microcode {
namespace {

constexpr char kReleaseFromWorkspace[] = "../shared/data/intel-microcode-20251111/intel-ucode";
constexpr char kAnchorRunfile[] = "host/microcode/README.md";

bool IsDir(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec);
}

}  // namespace

absl::StatusOr<std::string> FindReleaseDir() {
  namespace fs = std::filesystem;
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("UCODE_MICROCODE_RELEASE_DIR"); env && *env) {
    tried.push_back(env);
  }
  if (const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY"); ws && *ws) {
    tried.push_back(fs::path(ws) / kReleaseFromWorkspace);
  }
  // The runfile is a symlink into the source tree: its real path is
  // <workspace>/host/microcode/README.md.
  std::vector<fs::path> anchors = {kAnchorRunfile};
  if (const char* srcdir = std::getenv("TEST_SRCDIR"); srcdir && *srcdir) {
    anchors.push_back(fs::path(srcdir) / "ucode" / kAnchorRunfile);
  }
  for (const fs::path& anchor : anchors) {
    std::error_code ec;
    fs::path real = fs::canonical(anchor, ec);
    if (!ec) tried.push_back(real.parent_path().parent_path().parent_path() / kReleaseFromWorkspace);
  }
  tried.push_back(fs::current_path() / kReleaseFromWorkspace);
  for (const fs::path& p : tried) {
    if (IsDir(p)) return fs::weakly_canonical(p).string();
  }
  std::vector<std::string> names;
  for (const fs::path& p : tried) names.push_back(p.string());
  return absl::NotFoundError(
      absl::StrCat("microcode release directory not found; tried ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) files.push_back(entry.path().string());
  }
  if (ec) return absl::NotFoundError(absl::StrCat("list ", dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace ucode::microcode
