// Dead-man release when the coordinator is killed with SIGKILL mid-rendezvous: the
// coordinator runs in a child process, parks every VM, and is killed; every ucode-vmm must
// release its own vCPUs, say so in its log, and exit.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/base/read_file.h"
#include "tests/vmm_test_util.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode {
namespace {

using ::testing::HasSubstr;

// Child: start 3 VMs, park them all, report the VMM pids on `fd`, then wait to be killed.
[[noreturn]] void RunCoordinatorChild(int fd, const std::string& log_dir) {
  // A dead-man of 60 s: only the coordinator's death may release them.
  auto c = rendezvous::Coordinator::Start(testing::Fleet(3, 2, "spin"),
                                          {.deadman = absl::Seconds(60), .log_dir = log_dir});
  if (!c.ok() || !(*c)->Park(absl::Seconds(5)).ok()) _exit(3);
  std::vector<pid_t> pids = (*c)->pids();
  if (write(fd, pids.data(), pids.size() * sizeof(pid_t)) < 0) _exit(4);
  for (;;) pause();
}

TEST(VmmDeadmanTest, KillingTheCoordinatorReleasesEveryVmAndLeavesNoProcess) {
  SKIP_WITHOUT_KVM();
  std::string log_dir = absl::StrCat(testing::TestLogDir(), "/deadman");
  ASSERT_EQ(system(absl::StrCat("rm -rf ", log_dir, " && mkdir -p ", log_dir).c_str()), 0);
  // Orphaned VMMs get re-parented to us, so we can reap them and see them go.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(p[0]);
    RunCoordinatorChild(p[1], log_dir);
  }
  close(p[1]);
  pid_t pids[3];
  ssize_t n = read(p[0], pids, sizeof(pids));
  close(p[0]);
  ASSERT_EQ(n, static_cast<ssize_t>(sizeof(pids))) << "coordinator child failed to park";
  for (pid_t pid : pids) ASSERT_FALSE(testing::ProcessGone(pid));

  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));

  for (pid_t pid : pids) {
    // Re-parented to us: waitpid reaps it; it must exit on its own, cleanly.
    int st = 0;
    absl::Time end = absl::Now() + absl::Seconds(10);
    pid_t r = 0;
    while ((r = waitpid(pid, &st, WNOHANG)) == 0 && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (r == 0) kill(pid, SIGKILL);
    ASSERT_EQ(r, pid) << "ucode-vmm " << pid << " did not exit after its coordinator died";
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  }
  for (int i = 0; i < 3; ++i) {
    std::string log = ReadTextFile(absl::StrCat(log_dir, "/vm", i, ".log")).value_or("");
    EXPECT_THAT(log, HasSubstr("coordinator gone")) << log;
    EXPECT_THAT(log, HasSubstr("2 vCPU(s) parked, releasing them")) << log;
    EXPECT_THAT(log, HasSubstr("dead-man: releasing myself")) << log;
    EXPECT_THAT(log, HasSubstr("dead-man: all vCPUs released")) << log;
  }
}

}  // namespace
}  // namespace ucode
