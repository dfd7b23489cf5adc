#include "host/base/private_files.h"

#include <fcntl.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace ucode {

absl::StatusOr<std::string> MakePrivateDir(absl::string_view parent, absl::string_view prefix) {
  std::string dir(parent);
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp";
  }
  std::string path = absl::StrCat(dir, "/", prefix, "XXXXXX");
  if (mkdtemp(path.data()) == nullptr) return ErrnoStatus(errno, absl::StrCat("mkdtemp ", path));
  return path;  // mkdtemp creates it 0700
}

absl::StatusOr<UniqueFd> CreatePrivateFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", path, " (O_EXCL | O_NOFOLLOW)"));
  return fd;
}

}  // namespace ucode
