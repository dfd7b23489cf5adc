// Files that root creates in places other users can write to (/tmp, a log directory):
// names nobody can predict or plant first, and never a path that follows a symlink or
// reuses what is already there.
#ifndef UCODE_HOST_BASE_PRIVATE_FILES_H_
#define UCODE_HOST_BASE_PRIVATE_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "host/base/unique_fd.h"

namespace ucode {

// A new directory `<parent>/<prefix>XXXXXX` made by mkdtemp(3): mode 0700, owned by us.
// `parent` empty: $TMPDIR, else /tmp.
absl::StatusOr<std::string> MakePrivateDir(absl::string_view parent, absl::string_view prefix);

// Creates `path` for writing (appending), mode 0600: O_CREAT | O_EXCL | O_NOFOLLOW, so an
// existing file or a symlink planted under that name is refused (ALREADY_EXISTS), never
// written through. Close-on-exec.
absl::StatusOr<UniqueFd> CreatePrivateFile(const std::string& path);

}  // namespace ucode

#endif  // UCODE_HOST_BASE_PRIVATE_FILES_H_
