#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "host/base/private_files.h"
#include "host/base/status_macros.h"
#include "host/base/unique_fd.h"

namespace ucode {
namespace {

TEST(UniqueFd, ClosesOnDestructionAndMove) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.get(), raw);
  }
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(ErrnoStatus, MapsCodesAndNamesTheCall) {
  absl::Status s = ErrnoStatus(ENOENT, "open /dev/kvm");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(s.message().find("open /dev/kvm"), absl::string_view::npos);
  EXPECT_EQ(ErrnoStatus(EPERM, "x").code(), absl::StatusCode::kPermissionDenied);
}

absl::StatusOr<int> Half(int v) {
  if (v % 2) return absl::InvalidArgumentError("odd");
  return v / 2;
}

absl::Status UseMacros(int v, int* out) {
  ASSIGN_OR_RETURN(int h, Half(v));
  RETURN_IF_ERROR(h > 10 ? absl::OutOfRangeError("big") : absl::OkStatus());
  *out = h;
  return absl::OkStatus();
}

TEST(StatusMacros, PropagateErrorsAndValues) {
  int out = 0;
  EXPECT_TRUE(UseMacros(8, &out).ok());
  EXPECT_EQ(out, 4);
  EXPECT_EQ(UseMacros(3, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseMacros(40, &out).code(), absl::StatusCode::kOutOfRange);
}

TEST(PrivateFiles, DirIsFreshAnd0700) {
  absl::StatusOr<std::string> a = MakePrivateDir(std::getenv("TEST_TMPDIR"), "p-");
  absl::StatusOr<std::string> b = MakePrivateDir(std::getenv("TEST_TMPDIR"), "p-");
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_NE(*a, *b);
  struct stat st;
  ASSERT_EQ(stat(a->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

// A name planted before us (a file, or a symlink to a file we must not write) is refused.
TEST(PrivateFiles, FileRefusesWhatIsThere) {
  absl::StatusOr<std::string> dir = MakePrivateDir(std::getenv("TEST_TMPDIR"), "f-");
  ASSERT_TRUE(dir.ok());
  const std::string target = *dir + "/target";
  const std::string link = *dir + "/vm0.log";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  absl::StatusOr<UniqueFd> fd = CreatePrivateFile(link);
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kAlreadyExists) << fd.status();
  struct stat st;
  EXPECT_NE(stat(target.c_str(), &st), 0) << "the symlink's target was created";
  absl::StatusOr<UniqueFd> fresh = CreatePrivateFile(*dir + "/fresh.log");
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_EQ(fstat(fresh->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(CreatePrivateFile(*dir + "/fresh.log").status().code(),
            absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace ucode
