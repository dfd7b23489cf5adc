// Files that root creates in places other users can write to (/tmp, a log directory):
// names nobody can predict or plant first, and never a path that follows a symlink or
// reuses what is already there.
//
// The files ucoded keeps on disk (journal, instance lock, fleet record, VM logs) live in
// directories only ucoded's user may write, and are created mode 0600 without following
// symlinks. ucoded runs as root: a directory another user can write (/tmp, or one they
// made first) would let them plant a symlink that root then writes through.
#ifndef UCODE_HOST_BASE_PRIVATE_FILES_H_
#define UCODE_HOST_BASE_PRIVATE_FILES_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
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

// Creates `path` mode 0700 if missing (its parent must exist), then checks what is there:
// a real directory (not a symlink), owned by our effective uid, not writable by group or
// others. FAILED_PRECONDITION naming `what`, the path and the owner or mode otherwise.
absl::Status EnsurePrivateDir(const std::string& path, absl::string_view what);

// The directory part of a file path ("." for a bare name).
std::string DirOf(const std::string& path);

// Opens `path` read-write, creating it 0600 if missing; never follows a symlink, refuses
// anything but a regular file owned by us, and drops group/other permission bits of an
// existing file (older versions created 0644).
absl::StatusOr<UniqueFd> OpenPrivateFile(const std::string& path);

// Replaces `path` with `contents`: written to `path.tmp` (O_CREAT|O_EXCL|O_NOFOLLOW, 0600,
// a stale one removed first), fsynced, renamed over `path`.
absl::Status WritePrivateFile(const std::string& path, absl::string_view contents);

// One ucoded per journal (and per VMM state directory): an exclusive flock(2) on a lock
// file beside it, held for the process's life (the kernel drops it when the process dies,
// however it dies). The file holds the owner's pid so that a second instance can name it.
class InstanceLock {
 public:
  // FAILED_PRECONDITION naming the running instance's pid when the lock is held; `what`
  // names the shared thing in that message ("journal", "VMM state directory").
  static absl::StatusOr<std::unique_ptr<InstanceLock>> Acquire(const std::string& path,
                                                               absl::string_view what);
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

 private:
  explicit InstanceLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace ucode

#endif  // UCODE_HOST_BASE_PRIVATE_FILES_H_
