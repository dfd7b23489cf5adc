#include "guest-agent/hooks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "guest-agent/test_util.h"

namespace ucode_agent {
namespace {

using testing::TempDir;
using std::chrono::milliseconds;

HookOptions Options(int deadline_ms = 5000) {
  return {.deadline = milliseconds(deadline_ms),
          .env = {"UCODE_NEW_REVISION=0x2b", "UCODE_HOST=host-a"}};
}

TEST(HooksTest, MissingDirectoryHasNoHooks) {
  TempDir tmp;
  HookRun run = RunHooks(tmp.path() + "/absent", Options());
  EXPECT_TRUE(run.ok);
  EXPECT_TRUE(run.hooks.empty());
}

TEST(HooksTest, ListsOnlyRunPartsNamesThatAreExecutableFiles) {
  TempDir tmp;
  tmp.Write("d/20-b", "#!/bin/sh\n", 0755);
  tmp.Write("d/10_a", "#!/bin/sh\n", 0755);
  tmp.Write("d/30-c.sh", "#!/bin/sh\n", 0755);    // '.' not allowed (run-parts)
  tmp.Write("d/40-d~", "#!/bin/sh\n", 0755);      // backup file
  tmp.Write("d/.hidden", "#!/bin/sh\n", 0755);
  tmp.Write("d/50-noexec", "#!/bin/sh\n", 0644);
  tmp.Write("d/60-dir/x", "", 0644);              // a directory
  std::string error;
  EXPECT_EQ(ListHooks(tmp.path() + "/d", &error), (std::vector<std::string>{"10_a", "20-b"}));
  EXPECT_EQ(error, "");
}

TEST(HooksTest, RunsInNameOrderWithCleanEnvironmentAndNoStdin) {
  TempDir tmp;
  const std::string log = tmp.path() + "/log";
  // Each hook appends what it sees; `env` shows the complete environment.
  tmp.Write("d/20-second", "#!/bin/sh\necho second >> " + log + "\n", 0755);
  tmp.Write("d/10-first",
            "#!/bin/sh\n"
            "echo first >> " + log + "\n"
            "env | sort >> " + log + "\n"
            "if read line; then echo got-stdin >> " + log + "; fi\n"
            "echo out; echo err >&2\n",
            0755);
  setenv("UCODE_AGENT_TEST_LEAK", "1", 1);
  HookRun run = RunHooks(tmp.path() + "/d", Options());
  ASSERT_TRUE(run.ok) << (run.hooks.empty() ? run.error : run.hooks[0].reason);
  ASSERT_EQ(run.hooks.size(), 2u);
  EXPECT_EQ(run.hooks[0].name, "10-first");
  EXPECT_EQ(run.hooks[0].reason, "exit status 0");
  EXPECT_EQ(run.hooks[0].output, "out\nerr\n");
  std::string seen = tmp.Read("log");
  EXPECT_EQ(seen.find("first\n"), 0u);
  EXPECT_NE(seen.find("UCODE_NEW_REVISION=0x2b\n"), std::string::npos);
  EXPECT_NE(seen.find("UCODE_HOST=host-a\n"), std::string::npos);
  EXPECT_NE(seen.find("PATH=/usr/local/sbin:"), std::string::npos);
  EXPECT_EQ(seen.find("UCODE_AGENT_TEST_LEAK"), std::string::npos);
  EXPECT_EQ(seen.find("got-stdin"), std::string::npos);
  EXPECT_NE(seen.find("second\n"), std::string::npos);
}

TEST(HooksTest, FailureStopsTheRunAndSaysWhy) {
  TempDir tmp;
  tmp.Write("d/10-fail", "#!/bin/sh\necho 'cannot quiesce'\nexit 3\n", 0755);
  tmp.Write("d/20-never", "#!/bin/sh\ntouch " + tmp.path() + "/ran\n", 0755);
  HookRun run = RunHooks(tmp.path() + "/d", Options());
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].name, "10-fail");
  EXPECT_EQ(run.hooks[0].reason, "exit status 3");
  EXPECT_EQ(run.hooks[0].output, "cannot quiesce\n");
  EXPECT_FALSE(std::filesystem::exists(tmp.path() + "/ran"));
}

TEST(HooksTest, ContinuesAfterFailureWhenAsked) {
  TempDir tmp;
  tmp.Write("d/10-fail", "#!/bin/sh\nexit 1\n", 0755);
  tmp.Write("d/20-ok", "#!/bin/sh\nexit 0\n", 0755);
  HookOptions o = Options();
  o.stop_on_failure = false;
  HookRun run = RunHooks(tmp.path() + "/d", o);
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 2u);
  EXPECT_TRUE(run.hooks[1].ok);
}

// True once `pid` is gone (or a zombie nobody reaps). Delivery of SIGKILL is asynchronous.
bool Dies(const std::string& pid_text) {
  const std::string stat_path = "/proc/" + pid_text.substr(0, pid_text.find('\n')) + "/stat";
  for (int i = 0; i < 500; ++i) {
    std::ifstream in(stat_path);
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (stat.empty() || stat.find(") Z ") != std::string::npos) return true;
    usleep(10000);
  }
  return false;
}

// Both background children die at the deadline: the one in the hook's process group,
// and the one setsid(1) took out of it (which used to survive).
TEST(HooksTest, TimeoutKillsTheHookAndItsChildren) {
  TempDir tmp;
  const std::string pidfile = tmp.path() + "/child.pid";
  const std::string setsid_pidfile = tmp.path() + "/setsid.pid";
  tmp.Write("d/10-hang",
            "#!/bin/sh\nsleep 1000 &\necho $! > " + pidfile + "\nsetsid sleep 1000 &\necho $! > " +
                setsid_pidfile + "\nsleep 1000\n",
            0755);
  HookRun run = RunHooks(tmp.path() + "/d", Options(300));
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "deadline of 300 ms reached; killed");
  for (const char* file : {"child.pid", "setsid.pid"}) {
    std::string pid = tmp.Read(file);
    ASSERT_FALSE(pid.empty()) << file;
    EXPECT_TRUE(Dies(pid)) << file << ": " << pid << " outlived the deadline";
  }
}

// Nothing a hook started outlives it, even when the hook itself exits in time.
TEST(HooksTest, DetachedChildDoesNotOutliveItsHook) {
  TempDir tmp;
  const std::string pidfile = tmp.path() + "/child.pid";
  tmp.Write("d/10-daemon", "#!/bin/sh\nsetsid sleep 1000 &\necho $! > " + pidfile + "\n", 0755);
  HookRun run = RunHooks(tmp.path() + "/d", Options());
  EXPECT_TRUE(run.ok) << run.hooks[0].reason;
  std::string pid = tmp.Read("child.pid");
  ASSERT_FALSE(pid.empty());
  EXPECT_TRUE(Dies(pid)) << "detached child " << pid << " outlived its hook";
}

// A directory under /tmp that uid 65534 can reach (TEST_TMPDIR is under /root).
class SharedDir {
 public:
  SharedDir() {
    char tmpl[] = "/tmp/ucode-hooks.XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
    chmod(path_.c_str(), 0755);
  }
  ~SharedDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `command` with sh as uid/gid 65534 (a real unprivileged process); its exit status.
int AsNobody(const std::string& command) {
  return system(("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c '" + command + "'")
                    .c_str());
}

// As uid 65534: writes `path` as a script that creates `marker`, and makes it executable
// (`make_executable`: only a file of their own).
int PlantAsNobody(const std::string& path, const std::string& marker, bool make_executable) {
  return AsNobody("printf \"#!/bin/sh\\ntouch " + marker + "\\n\" > " + path +
                  (make_executable ? " && chmod 0755 " + path : ""));
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  chmod(path.c_str(), mode);
}

// A world-writable hook: a local user rewrites it, and root used to run the result.
TEST(HooksTest, HookWritableByOthersIsRefusedNotRun) {
  if (AsNobody("true") != 0) GTEST_SKIP() << "cannot run as uid 65534 (sandbox?)";
  SharedDir dir;
  const std::string hooks = dir.path() + "/prepare.d";
  mkdir(hooks.c_str(), 0755);
  const std::string marker = dir.path() + "/pwned";
  WriteFile(hooks + "/10-hook", "#!/bin/sh\nexit 0\n", 0755);
  chmod((hooks + "/10-hook").c_str(), 0757);  // chmod ignores the umask
  ASSERT_EQ(PlantAsNobody(hooks + "/10-hook", marker, /*make_executable=*/false), 0);
  HookRun run = RunHooks(hooks, Options());
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "hook mode 0757 is writable by group or others; refused, not run");
  EXPECT_NE(access(marker.c_str(), F_OK), 0) << "root ran a hook another user wrote";
}

// A symlink in the hook directory to a script another user owns.
TEST(HooksTest, SymlinkToAnotherUsersScriptIsRefused) {
  if (AsNobody("true") != 0) GTEST_SKIP() << "cannot run as uid 65534 (sandbox?)";
  SharedDir dir;
  const std::string hooks = dir.path() + "/prepare.d";
  const std::string theirs = dir.path() + "/theirs";
  mkdir(hooks.c_str(), 0755);
  mkdir(theirs.c_str(), 0777);
  chmod(theirs.c_str(), 0777);
  const std::string marker = dir.path() + "/pwned";
  ASSERT_EQ(PlantAsNobody(theirs + "/x", marker, /*make_executable=*/true), 0);
  ASSERT_EQ(symlink((theirs + "/x").c_str(), (hooks + "/10-link").c_str()), 0);
  HookRun run = RunHooks(hooks, Options());
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "hook is a symlink; refused, not run");
  EXPECT_NE(access(marker.c_str(), F_OK), 0);

  // The same script copied in but still owned by that user: refused too.
  unlink((hooks + "/10-link").c_str());
  ASSERT_EQ(AsNobody("cp " + theirs + "/x " + theirs + "/y"), 0);
  ASSERT_EQ(rename((theirs + "/y").c_str(), (hooks + "/10-copy").c_str()), 0);
  run = RunHooks(hooks, Options());
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "hook owned by uid 65534, not root; refused, not run");
  EXPECT_NE(access(marker.c_str(), F_OK), 0);
}

// A directory others can write to: any hook in it may be theirs. Nothing runs.
TEST(HooksTest, DirectoryWritableByOthersRunsNothing) {
  if (AsNobody("true") != 0) GTEST_SKIP() << "cannot run as uid 65534 (sandbox?)";
  SharedDir dir;
  const std::string hooks = dir.path() + "/prepare.d";
  mkdir(hooks.c_str(), 0777);
  chmod(hooks.c_str(), 0777);
  const std::string marker = dir.path() + "/pwned";
  ASSERT_EQ(PlantAsNobody(hooks + "/10-planted", marker, /*make_executable=*/true), 0);
  HookRun run = RunHooks(hooks, Options());
  EXPECT_FALSE(run.ok);
  EXPECT_TRUE(run.hooks.empty());
  EXPECT_EQ(run.error, "hook directory mode 0777 is writable by group or others: " + hooks +
                           " refused, no hook run");
  EXPECT_NE(access(marker.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace ucode_agent
