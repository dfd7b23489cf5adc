// Finds the Intel microcode release the tests and the benchmark read:
// `<workspace>/../shared/data/intel-microcode-20251111/intel-ucode`. Bazel runs tests
// from a runfiles tree and `bazel run` from anywhere, so the workspace is found by
// following a runfile symlink back to the source tree.
#ifndef UCODE_HOST_MICROCODE_RELEASE_DIR_H_
#define UCODE_HOST_MICROCODE_RELEASE_DIR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ucode::microcode {

// In order: $UCODE_MICROCODE_RELEASE_DIR; $BUILD_WORKSPACE_DIRECTORY (bazel run); the
// real path of the runfile host/microcode/README.md (bazel test; the target must list it
// in `data`); the current directory's ../shared/data. NOT_FOUND names every place tried.
absl::StatusOr<std::string> FindReleaseDir();

// Regular files of `dir`, sorted by name, as full paths.
absl::StatusOr<std::vector<std::string>> ListFiles(const std::string& dir);

}  // namespace ucode::microcode

#endif  // UCODE_HOST_MICROCODE_RELEASE_DIR_H_
