#include "host/base/private_files.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

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

namespace {

constexpr mode_t kGroupOtherWrite = S_IWGRP | S_IWOTH;

absl::Status CheckOwned(const struct stat& st, absl::string_view what, const std::string& path) {
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " ", path, ": owned by uid ", st.st_uid, ", not ucoded's uid ", geteuid(),
        " (refusing: its owner could plant files that ucoded would write through)"));
  }
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("write ", path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status EnsurePrivateDir(const std::string& path, absl::string_view what) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, absl::StrCat(what, ": mkdir ", path));
  }
  // O_NOFOLLOW: a symlink in the last component fails with ELOOP instead of being used.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    int err = errno;
    if (err == ELOOP || err == ENOTDIR) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " ", path, ": not a directory (a symlink or a file); refusing"));
    }
    return ErrnoStatus(err, absl::StrCat(what, ": open ", path));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat(what, ": fstat ", path));
  if (absl::Status s = CheckOwned(st, what, path); !s.ok()) return s;
  if ((st.st_mode & kGroupOtherWrite) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s %s: mode %04o lets group or others write in it; refusing (chmod go-w, or let "
        "ucoded create it)",
        what, path, st.st_mode & 07777));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenPrivateFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600));
  if (!fd) {
    int err = errno;
    if (err == ELOOP) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": is a symlink; refusing"));
    }
    return ErrnoStatus(err, absl::StrCat("open ", path));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("fstat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file; refusing"));
  }
  if (absl::Status s = CheckOwned(st, "file", path); !s.ok()) return s;
  if ((st.st_mode & 077) != 0 && fchmod(fd.get(), 0600) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod 0600 ", path));
  }
  return fd;
}

absl::Status WritePrivateFile(const std::string& path, absl::string_view contents) {
  const std::string tmp = path + ".tmp";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("unlink stale ", tmp));
  }
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  if (absl::Status s = WriteFully(fd.get(), contents, tmp); !s.ok()) return s;
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", tmp));
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<InstanceLock>> InstanceLock::Acquire(const std::string& path,
                                                                    absl::string_view what) {
  absl::StatusOr<UniqueFd> fd = OpenPrivateFile(path);
  if (!fd.ok()) return fd.status();
  if (flock(fd->get(), LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return ErrnoStatus(err, absl::StrCat("flock ", path));
    char buf[32] = {};
    ssize_t n = pread(fd->get(), buf, sizeof(buf) - 1, 0);
    int64_t pid = 0;
    std::string holder = "another process";
    if (n > 0 && absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, n)), &pid)) {
      holder = absl::StrCat("ucoded pid ", pid);
    }
    return absl::FailedPreconditionError(
        absl::StrCat(holder, " is running with the same ", what, " (it holds ", path,
                     "); stop it first, or give this instance its own ", what));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd->get(), 0) != 0 || pwrite(fd->get(), pid.data(), pid.size(), 0) < 0) {
    return ErrnoStatus(errno, absl::StrCat("write pid to ", path));
  }
  return std::unique_ptr<InstanceLock>(new InstanceLock(*std::move(fd)));
}

}  // namespace ucode
