#include "host/platform/linux_firmware.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"

namespace ucode::platform {
namespace {

// `root` ends with '/'; `path` is absolute or relative.
std::string Under(const std::string& root, absl::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return absl::StrCat(root, path);
}

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// mkdir -p with 0755 for the directories a firmware file goes into (root-owned system
// directories; an existing component is accepted as it is).
absl::Status MakeDirs(const std::string& root, absl::string_view dir) {
  std::string path = root;
  for (absl::string_view part : absl::StrSplit(dir, '/', absl::SkipEmpty())) {
    absl::StrAppend(&path, part, "/");
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", path));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, absl::Span<const uint8_t> bytes, const std::string& path) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoStatus(errno, absl::StrCat("write ", path));
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads `path` once so that the kernel's request_firmware() finds it in the page cache.
void WarmPageCache(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return;
  char buf[1 << 16];
  while (read(fd.get(), buf, sizeof(buf)) > 0) {
  }
}

}  // namespace

std::vector<std::string> FirmwareSearchDirs(const std::string& param_path,
                                            const std::string& release) {
  std::vector<std::string> dirs;
  if (!param_path.empty()) dirs.push_back(param_path);
  dirs.push_back(absl::StrCat("/lib/firmware/updates/", release));
  dirs.push_back("/lib/firmware/updates");
  dirs.push_back(absl::StrCat("/lib/firmware/", release));
  dirs.push_back("/lib/firmware");
  return dirs;
}

std::vector<std::string> FindFirmware(const std::string& root,
                                      const std::vector<std::string>& dirs,
                                      const std::string& name) {
  std::vector<std::string> found;
  for (const std::string& dir : dirs) {
    const std::string path = Under(root, absl::StrCat(dir, "/", name));
    if (IsRegularFile(path)) found.push_back(path);
  }
  return found;
}

absl::StatusOr<std::unique_ptr<InstalledFirmware>> InstalledFirmware::Install(
    const std::string& root, const std::vector<std::string>& dirs, const std::string& name,
    const std::string& new_file_dir, absl::Span<const uint8_t> bytes) {
  std::unique_ptr<InstalledFirmware> out(new InstalledFirmware());
  out->rolled_back_ = true;  // nothing to undo until the rename below
  const std::vector<std::string> found = FindFirmware(root, dirs, name);
  if (!found.empty()) {
    out->path_ = found.front();
  } else {
    const std::string& dir = new_file_dir;
    const std::string sub = absl::StrCat(dir, "/", name.substr(0, name.rfind('/')));
    RETURN_IF_ERROR(MakeDirs(root, sub));
    out->path_ = Under(root, absl::StrCat(dir, "/", name));
  }
  const std::string& path = out->path_;

  // A fresh name in the same directory: O_EXCL never reuses an existing file or follows
  // a planted symlink.
  std::string temp = absl::StrCat(path, ".ucode-new.XXXXXX");
  UniqueFd fd(mkostemp(temp.data(), O_CLOEXEC));
  if (!fd) {
    const int err = errno;
    return ErrnoStatus(err, absl::StrCat("install ", path, ": create temporary ", temp,
                                         err == EROFS ? " (read-only file system: the kernel "
                                                        "would read this file first, so ucode "
                                                        "cannot install anywhere else)"
                                                      : ""));
  }
  absl::Status written = WriteAll(fd.get(), bytes, temp);
  if (written.ok() && fchmod(fd.get(), 0644) != 0) written = ErrnoStatus(errno, "fchmod " + temp);
  if (written.ok() && fsync(fd.get()) != 0) written = ErrnoStatus(errno, "fsync " + temp);
  if (!written.ok()) {
    unlink(temp.c_str());
    return written;
  }
  // Keep the current file for rollback (a hard link, so the name never goes missing), then
  // swap the new one in atomically.
  if (IsRegularFile(path)) {
    const std::string prev = path + ".ucode-prev";
    unlink(prev.c_str());
    if (link(path.c_str(), prev.c_str()) != 0) {
      const absl::Status s = ErrnoStatus(errno, absl::StrCat("link ", prev));
      unlink(temp.c_str());
      return s;
    }
    out->previous_path_ = prev;
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    const absl::Status s = ErrnoStatus(errno, absl::StrCat("rename to ", path));
    unlink(temp.c_str());
    if (!out->previous_path_.empty()) unlink(out->previous_path_.c_str());
    return s;
  }
  out->rolled_back_ = false;
  WarmPageCache(path);
  return out;
}

InstalledFirmware::~InstalledFirmware() {
  if (!kept_) Rollback();
}

void InstalledFirmware::Rollback() {
  if (rolled_back_) return;
  rolled_back_ = true;
  if (!previous_path_.empty()) {
    rename(previous_path_.c_str(), path_.c_str());
  } else {
    unlink(path_.c_str());
  }
}

}  // namespace ucode::platform
