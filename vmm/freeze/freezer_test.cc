// The freezer and its guard on this machine's real cgroups (tagged no-sandbox): each
// mechanism freezes a fake VMM's "CPU n/KVM" threads and thaws them, threads go back where
// they were, and the guard thaws when its parent is killed with SIGKILL or the hold limit
// passes. Progress is read from the threads' own counters, never from clocks.
#include "vmm/freeze/freezer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "host/base/read_file.h"
#include "vmm/freeze/fake_vmm.h"
#include "vmm/freeze/freeze_guard.h"
#include "vmm/freeze/leftovers.h"
#include "vmm/freeze/vcpu_threads.h"

namespace ucode::freeze {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(10);  // generous: a loaded machine
constexpr absl::Duration kQuiet = absl::Milliseconds(100);

std::string ReadAll(const std::string& path) { return ReadTextFile(path).value_or(""); }

std::string Mountinfo() { return ReadAll("/proc/self/mountinfo"); }

// The mountinfo without one kind of cgroup mount, to force the next mechanism.
std::string Without(const std::string& mountinfo, const std::string& fstype) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    if (!absl::StrContains(line, " - " + fstype + " ")) absl::StrAppend(&out, line, "\n");
  }
  return out;
}

absl::StatusOr<FreezeTarget> Target(const FakeVmm& vm, int vcpus, const std::string& mountinfo) {
  absl::StatusOr<std::vector<ThreadInput>> threads = ReadVcpuThreads("/proc", vm.pid(), vcpus);
  if (!threads.ok()) return threads.status();
  absl::StatusOr<FreezePlan> plan =
      PlanFreeze(mountinfo, *threads, absl::StrCat("ucode-freeze-test-", getpid()));
  if (!plan.ok()) return plan.status();
  return FreezeTarget{.name = absl::StrCat("fake-", vm.pid()), .plan = *std::move(plan)};
}

std::string ThreadCgroups(pid_t pid, pid_t tid) {
  return ReadAll(absl::StrCat("/proc/", pid, "/task/", tid, "/cgroup"));
}

void FreezeThawRestore(const FakeVmm& vm, FreezeTarget target, Mechanism expected) {
  ASSERT_EQ(target.plan.units[0].mechanism, expected) << target.plan.Describe();
  const std::string before = ThreadCgroups(vm.pid(), vm.tids()[0]);
  absl::StatusOr<std::unique_ptr<Freezer>> f = Freezer::Prepare({std::move(target)});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(vm.AllProgress(kDeadline));  // moved, not frozen
  ASSERT_TRUE((*f)->Freeze(kDeadline).ok());
  EXPECT_TRUE(vm.NoneProgress(kQuiet));
  EXPECT_GE((*f)->timings()[0].freeze_latency, absl::ZeroDuration());
  ASSERT_TRUE((*f)->Thaw().ok());
  EXPECT_TRUE(vm.AllProgress(kDeadline));
  ASSERT_TRUE((*f)->Restore().ok());
  EXPECT_EQ(ThreadCgroups(vm.pid(), vm.tids()[0]), before);
  EXPECT_TRUE(vm.AllProgress(kDeadline));
}

TEST(FreezerTest, OwnThreadedCgroup2) {
  FakeVmm vm(2);
  absl::StatusOr<FreezeTarget> t = Target(vm, 2, Mountinfo());
  ASSERT_TRUE(t.ok()) << t.status();
  FreezeThawRestore(vm, *std::move(t), Mechanism::kV2Own);
}

TEST(FreezerTest, CgroupV1Freezer) {
  FakeVmm vm(2);
  const std::string v1 = Without(Mountinfo(), "cgroup2");
  if (ParseMountinfo(v1).v1_freezer.empty()) GTEST_SKIP() << "no cgroup-v1 freezer here";
  absl::StatusOr<FreezeTarget> t = Target(vm, 2, v1);
  ASSERT_TRUE(t.ok()) << t.status();
  FreezeThawRestore(vm, *std::move(t), Mechanism::kV1Own);
}

// libvirt's layout, built by hand: the process in a cgroup of its own, each vCPU thread
// alone in a threaded vcpuN child. Frozen in place; nothing moves.
TEST(FreezerTest, InPlaceVcpuCgroups) {
  const std::string v2 = ParseMountinfo(Mountinfo()).v2;
  if (v2.empty()) GTEST_SKIP() << "no cgroup2 here";
  FakeVmm vm(2);
  const std::string dom = absl::StrCat(v2, "/ucode-freeze-test-dom-", getpid());
  ASSERT_EQ(mkdir(dom.c_str(), 0755), 0);
  std::ofstream(dom + "/cgroup.procs") << vm.pid();
  for (int i = 0; i < 2; ++i) {
    const std::string d = absl::StrCat(dom, "/vcpu", i);
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    std::ofstream(d + "/cgroup.type") << "threaded";
    std::ofstream(d + "/cgroup.threads") << vm.tids()[i];
  }
  {
    absl::StatusOr<FreezeTarget> t = Target(vm, 2, Mountinfo());
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->plan.units.size(), 2u);
    FreezeThawRestore(vm, *std::move(t), Mechanism::kV2InPlace);
  }
  // Put everything back (the root cgroup takes the process and its threads).
  std::ofstream(v2 + "/cgroup.procs") << vm.pid();
  for (int i = 0; i < 2; ++i) rmdir(absl::StrCat(dom, "/vcpu", i).c_str());
  rmdir(dom.c_str());
}

// A unit that never reports frozen (a fake cgroup: plain files, "frozen 0" for ever)
// beside a real one: Freeze waits until the deadline, thaws both, and names the VM and
// vCPUs that missed it.
TEST(FreezerTest, MissedDeadlineThawsEverythingAndNamesTheLateVcpus) {
  FakeVmm vm(1);
  absl::StatusOr<FreezeTarget> real = Target(vm, 1, Mountinfo());
  ASSERT_TRUE(real.ok()) << real.status();
  char tmpl[] = "/tmp/fake-cgroup-XXXXXX";
  const std::string fake = mkdtemp(tmpl);
  std::ofstream(fake + "/cgroup.freeze") << "0";
  std::ofstream(fake + "/cgroup.events") << "populated 1\nfrozen 0\n";
  FreezeTarget stuck{.name = "stuck-vm"};
  stuck.plan.units.push_back(
      {.mechanism = Mechanism::kV2InPlace, .dir = fake, .tids = {1}, .vcpus = {3}});
  absl::StatusOr<std::unique_ptr<Freezer>> f = Freezer::Prepare({*std::move(real), stuck});
  ASSERT_TRUE(f.ok()) << f.status();
  absl::Status s = (*f)->Freeze(absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(s.message(), ::testing::HasSubstr("stuck-vm vcpu 3"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("thawed every VM"));
  EXPECT_EQ(ReadAll(fake + "/cgroup.freeze"), "0");
  EXPECT_TRUE(vm.AllProgress(kDeadline));  // the real one was thawed too
  ASSERT_TRUE((*f)->Restore().ok());
  std::system(("rm -rf " + fake).c_str());
}

TEST(FreezerTest, ThreadCountMismatchFreezesNothing) {
  FakeVmm vm(2);
  absl::StatusOr<std::vector<ThreadInput>> threads = ReadVcpuThreads("/proc", vm.pid(), 3);
  EXPECT_EQ(threads.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(threads.status().message(), ::testing::HasSubstr("expected 3 vCPU threads"));
  EXPECT_TRUE(vm.AllProgress(kDeadline));
}

TEST(FreezeGuardTest, ThawsWhenTheHoldLimitPasses) {
  FakeVmm vm(2);
  absl::StatusOr<FreezeTarget> t = Target(vm, 2, Mountinfo());
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::unique_ptr<Freezer>> f = Freezer::Prepare({*std::move(t)});
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<FreezeGuard> guard =
      FreezeGuard::Start((*f)->ThawWrites(), absl::Milliseconds(300));
  ASSERT_TRUE(guard.ok()) << guard.status();
  // Disarmed: no limit runs.
  ASSERT_TRUE((*f)->Freeze(kDeadline).ok());
  EXPECT_TRUE(vm.NoneProgress(absl::Milliseconds(500)));
  EXPECT_EQ(guard->TakeFired(), 0);
  ASSERT_TRUE((*f)->Thaw().ok());
  // Armed: the guard thaws when the limit passes.
  ASSERT_TRUE(guard->Arm().ok());
  ASSERT_TRUE((*f)->Freeze(kDeadline).ok());
  EXPECT_TRUE(vm.AllProgress(kDeadline));  // the guard thawed, not us
  EXPECT_EQ(guard->TakeFired(), 1);
  guard->Disarm();
}

// A coordinator in a child process: prepares `target`, starts an armed guard with a 60 s
// hold limit, freezes, and waits to be killed. Returns its pid and its guard's.
std::pair<pid_t, pid_t> ForkFrozenCoordinator(FreezeTarget target) {
  int ready[2];
  if (pipe(ready) != 0) return {-1, -1};
  const pid_t coordinator = fork();
  if (coordinator == 0) {
    close(ready[0]);
    absl::StatusOr<std::unique_ptr<Freezer>> f = Freezer::Prepare({std::move(target)});
    if (!f.ok()) _exit(1);
    absl::StatusOr<FreezeGuard> guard = FreezeGuard::Start((*f)->ThawWrites(), absl::Seconds(60));
    if (!guard.ok() || !guard->Arm().ok() || !(*f)->Freeze(kDeadline).ok()) _exit(1);
    const pid_t g = guard->pid();
    (void)!write(ready[1], &g, sizeof(g));
    for (;;) pause();
  }
  close(ready[1]);
  pid_t guard = -1;
  if (read(ready[0], &guard, sizeof(guard)) != static_cast<ssize_t>(sizeof(guard))) guard = -1;
  close(ready[0]);
  return {coordinator, guard};
}

// The coordinator is killed with SIGKILL while frozen: the guard must thaw at once, not at
// its 60 s limit.
TEST(FreezeGuardTest, ThawsWhenTheCoordinatorIsKilled) {
  FakeVmm vm(2);
  absl::StatusOr<FreezeTarget> t = Target(vm, 2, Mountinfo());
  ASSERT_TRUE(t.ok()) << t.status();
  auto [coordinator, guard] = ForkFrozenCoordinator(*std::move(t));
  ASSERT_GT(guard, 0);
  EXPECT_TRUE(vm.NoneProgress(kQuiet));
  ASSERT_EQ(kill(coordinator, SIGKILL), 0);
  waitpid(coordinator, nullptr, 0);
  // Well before the 60 s limit (a generous bound for a loaded machine).
  EXPECT_TRUE(vm.AllProgress(absl::Seconds(20)));
  // The coordinator never put the threads back; recovery does, and finds nothing frozen.
  EXPECT_EQ(*ThawLeftovers("/proc", Mountinfo(), vm.pid()), 0);
}

// Coordinator and guard both killed: the threads stay frozen until a restarted daemon's
// recovery (ThawLeftovers) thaws them and puts them back.
TEST(LeftoversTest, RecoveryThawsAndRestoresWhatTheDeadLeft) {
  FakeVmm vm(2);
  const std::string v1 = Without(Mountinfo(), "cgroup2");
  for (const std::string& mountinfo : {Mountinfo(), v1}) {
    absl::StatusOr<FreezeTarget> t = Target(vm, 2, mountinfo);
    ASSERT_TRUE(t.ok()) << t.status();
    const std::string before = ThreadCgroups(vm.pid(), vm.tids()[1]);
    auto [coordinator, guard] = ForkFrozenCoordinator(*std::move(t));
    ASSERT_GT(guard, 0);
    ASSERT_EQ(kill(guard, SIGKILL), 0);  // the guard first: nobody thaws
    ASSERT_EQ(kill(coordinator, SIGKILL), 0);
    waitpid(coordinator, nullptr, 0);
    EXPECT_TRUE(vm.NoneProgress(kQuiet));
    absl::StatusOr<int> thawed = ThawLeftovers("/proc", mountinfo, vm.pid());
    ASSERT_TRUE(thawed.ok()) << thawed.status();
    EXPECT_EQ(*thawed, 1);
    EXPECT_TRUE(vm.AllProgress(kDeadline));
    EXPECT_EQ(ThreadCgroups(vm.pid(), vm.tids()[1]), before);
    EXPECT_EQ(*ThawLeftovers("/proc", mountinfo, vm.pid()), 0);  // nothing left
  }
}

}  // namespace
}  // namespace ucode::freeze
