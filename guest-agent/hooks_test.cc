#include "guest-agent/hooks.h"

#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "guest-agent/test_util.h"

namespace ucode_agent {
namespace {

using testing::TempDir;
using std::chrono::milliseconds;

HookOptions Options(int deadline_ms = 5000) {
  HookOptions o;
  o.deadline = milliseconds(deadline_ms);
  o.env = {"UCODE_NEW_REVISION=0x2b", "UCODE_HOST=host-a"};
  return o;
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

TEST(HooksTest, TimeoutKillsTheHookAndItsChildren) {
  TempDir tmp;
  const std::string pidfile = tmp.path() + "/child.pid";
  // The hook starts a background child that would outlive it, then hangs.
  tmp.Write("d/10-hang", "#!/bin/sh\nsleep 1000 &\necho $! > " + pidfile + "\nsleep 1000\n",
            0755);
  HookRun run = RunHooks(tmp.path() + "/d", Options(300));
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "deadline of 300 ms reached; killed");
  std::string pid = tmp.Read("child.pid");
  ASSERT_FALSE(pid.empty());
  // The background child was in the hook's process group and got SIGKILL too.
  // Delivery is asynchronous, so wait (bounded) until it is a zombie or gone.
  const std::string stat_path = "/proc/" + pid.substr(0, pid.find('\n')) + "/stat";
  bool dead = false;
  for (int i = 0; i < 500 && !dead; ++i) {
    std::ifstream in(stat_path);
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    dead = stat.empty() || stat.find(") Z ") != std::string::npos;
    if (!dead) usleep(10000);
  }
  EXPECT_TRUE(dead);
}

TEST(HooksTest, OutputIsBounded) {
  TempDir tmp;
  // 1 MiB of output: captured up to the limit, the rest drained so the hook
  // never blocks on a full pipe.
  tmp.Write("d/10-chatty", "#!/bin/sh\nhead -c 1048576 /dev/zero\n", 0755);
  HookOptions o = Options();
  o.max_output_bytes = 100;
  HookRun run = RunHooks(tmp.path() + "/d", o);
  ASSERT_TRUE(run.ok) << run.hooks[0].reason;
  EXPECT_EQ(run.hooks[0].output.size(), 100u);
}

TEST(HooksTest, NonExecutableFormatIsReported) {
  TempDir tmp;
  tmp.Write("d/10-bogus", "not a script\n", 0755);  // no #!, not ELF
  HookRun run = RunHooks(tmp.path() + "/d", Options());
  EXPECT_FALSE(run.ok);
  ASSERT_EQ(run.hooks.size(), 1u);
  EXPECT_EQ(run.hooks[0].reason, "exit status 127");
}

}  // namespace
}  // namespace ucode_agent
