// End to end: the kernel freezer holding real libvirt domains (QEMU TCG, Debian's kernel,
// busybox initramfs, ucode-agent; tests/linux_guest) under a private libvirtd:
//  - freeze, then thaw: while frozen the vCPU threads use no CPU time and the guest's own
//    clock reads stop (the agent's meter sees a gap spanning the hold); libvirt says
//    "running" throughout and raises no suspended/resumed event; the agents answer after;
//  - the coordinator (freeze_holder) killed with SIGKILL while frozen: the guard thaws at
//    once, long before its 60 s dead-man deadline; coordinator and guard both killed: a
//    restarted ucoded's recovery (LibvirtGuests::ResumePaused) thaws the domains;
//  - a domain someone else paused is left alone;
//  - a domain whose vCPU threads cannot be identified (QEMU without debug-threads): a
//    clear error naming it, nothing frozen, with --pause freeze and auto alike;
//  - `ucodectl -c URI apply` freezes by default;
//  - one operation over ucode-vmm VMs (real KVM) and frozen domains ends with all running.
// Progress is read from CPU time counters and the guests' own clocks, never asserted
// against host timings.
//
// Arguments (BUILD.bazel): --agent= --build_initramfs= --render_domain_xml= --holder=
// --ucodectl= --make_fuzz_seeds=
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/base/read_file.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"
#include "tests/libvirt_guest/guest_lab.h"
#include "tests/libvirt_guest/subprocess.h"
#include "tests/vmm_test_util.h"
#include "vmm/inventory/libvirt_guests.h"
#include "vmm/freeze/leftovers.h"
#include "vmm/freeze/vcpu_threads.h"
#include "vmm/libvirt/agent_call.h"
#include "vmm/orchestrator/coordinator_group.h"
#include "vmm/orchestrator/libvirt_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
using orchestrator::AgentNotice;
using orchestrator::LibvirtGuestGroup;
using orchestrator::PauseMode;

GuestLabOptions g_options;
std::string g_holder;
std::string g_ucodectl;
std::string g_make_fuzz_seeds;

// Bounds, not expectations (2 shared cores, TCG guests).
constexpr absl::Duration kBootTimeout = absl::Seconds(300);
constexpr absl::Duration kDeadline = absl::Seconds(10);
constexpr absl::Duration kProgressBound = absl::Seconds(30);
constexpr absl::Duration kHold = absl::Milliseconds(300);
const std::vector<std::string> kDomains = {"web1", "web2"};

std::string ReadAll(const std::string& path) { return ReadTextFile(path).value_or(""); }

// utime + stime (clock ticks) of the process's vCPU threads, from /proc/PID/task/TID/stat.
uint64_t VcpuCpuTime(pid_t pid) {
  absl::StatusOr<std::vector<freeze::ThreadInput>> threads = freeze::ReadVcpuThreads("/proc", pid, -1);
  if (!threads.ok()) return 0;
  uint64_t total = 0;
  for (const freeze::ThreadInput& t : *threads) {
    if (t.vcpu < 0) continue;
    const std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/task/", t.tid, "/stat"));
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    uint64_t utime = 0, stime = 0;
    // Fields 14 and 15 of proc(5); f[0] is field 3.
    if (f.size() > 13 && absl::SimpleAtoi(f[11], &utime) && absl::SimpleAtoi(f[12], &stime)) {
      total += utime + stime;
    }
  }
  return total;
}

bool CpuTimeAdvances(pid_t pid, absl::Duration bound) {
  const uint64_t before = VcpuCpuTime(pid);
  const absl::Time end = absl::Now() + bound;
  while (absl::Now() < end) {
    absl::SleepFor(absl::Milliseconds(20));
    if (VcpuCpuTime(pid) > before) return true;
  }
  return false;
}

// Is any vCPU thread of `pid` in a frozen cgroup (v2 cgroup.freeze or the v1 freezer)?
bool AnyVcpuFrozen(pid_t pid) {
  absl::StatusOr<std::vector<freeze::ThreadInput>> threads = freeze::ReadVcpuThreads("/proc", pid, -1);
  const freeze::CgroupMounts m = freeze::ParseMountinfo(ReadAll("/proc/self/mountinfo"));
  for (const freeze::ThreadInput& t : *threads) {
    if (t.vcpu < 0) continue;
    const freeze::ThreadCgroups c = freeze::ParseCgroupFile(t.cgroup_file);
    // (The root cgroups have neither file: never frozen.)
    if (!m.v2.empty() && absl::StartsWith(ReadAll(m.v2 + c.v2 + "/cgroup.freeze"), "1")) return true;
    const std::string v1 = m.v1_freezer.empty()
                               ? ""
                               : ReadAll(m.v1_freezer + c.v1_freezer + "/freezer.state");
    if (absl::StartsWith(v1, "FROZEN") || absl::StartsWith(v1, "FREEZING")) return true;
  }
  return false;
}

class FreezeE2eTest : public LabSuite {
 protected:
  static void SetUpTestSuite() {
    if (CreateLab(g_options)) BootAll(kDomains, kBootTimeout);
  }

  pid_t Pid(const std::string& name) { return *freeze::FindQemuByUuid("/proc", Dom(name).uuid()); }

  std::unique_ptr<LibvirtGuestGroup> Group(const std::vector<std::string>& names, PauseMode mode) {
    absl::StatusOr<std::vector<libvirt::Domain>> doms = conn().ListDomains({.names_or_uuids = names});
    EXPECT_TRUE(doms.ok()) << doms.status();
    absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> g =
        LibvirtGuestGroup::Create(conn(), *std::move(doms), {.host = "h", .pause = mode});
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *std::move(g) : nullptr;
  }

  int CountSince(const std::string& name, int type, uint64_t after) {
    return conn().events().CountLifecycle(Dom(name).uuid(), type, after);
  }

  bool AgentAnswers(const std::string& name) {
    return libvirt::CallAgent(Dom(name), R"({"execute":"guest-ping"})", absl::Seconds(10)).outcome ==
           libvirt::AgentOutcome::kReturned;
  }

  // One agent command that must return; its "return" value.
  json Agent(const std::string& name, const std::string& command) {
    libvirt::AgentCallResult r = libvirt::CallAgent(Dom(name), command, absl::Seconds(10));
    EXPECT_EQ(r.outcome, libvirt::AgentOutcome::kReturned) << name << ": " << r.status;
    return json::parse(r.reply, nullptr, false)["return"];
  }
  // Starts / stops the agent's meter directly: a spinning guest thread whose CPU time shows
  // whether the vCPUs run.
  void StartMeter(const std::string& name) {
    Agent(name,
          R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":1000,"measure-ms":120000}})");
  }
  void StopMeter(const std::string& name) {
    Agent(name,
          R"({"execute":"guest-ucode-complete","arguments":{"old-revision":1,"new-revision":2}})");
  }

};

TEST_F(FreezeE2eTest, FreezeHoldsTheGuestsAndLibvirtNeverNotices) {
  const uint64_t seq = conn().events().LastSeq();
  std::unique_ptr<LibvirtGuestGroup> g = Group(kDomains, PauseMode::kFreeze);
  ASSERT_NE(g, nullptr);
  absl::Status prepared = g->Prepare(kDeadline);
  ASSERT_TRUE(prepared.ok()) << prepared;
  EXPECT_EQ(g->pause_name(), "freeze");
  for (const std::string& n : g->Notes()) fprintf(stderr, "note: %s\n", n.c_str());
  orchestrator::NotifyResult prep =
      g->Notify({.phase = AgentNotice::Phase::kPrepare, .old_revision = 1, .new_revision = 2},
                absl::Seconds(10));
  for (const orchestrator::AgentReply& r : prep.replies) EXPECT_TRUE(r.status.ok()) << r.status;
  for (const std::string& name : kDomains) ASSERT_TRUE(CpuTimeAdvances(Pid(name), kProgressBound));

  ASSERT_TRUE(g->Park(kDeadline).ok());
  std::vector<uint64_t> frozen;
  for (const std::string& name : kDomains) frozen.push_back(VcpuCpuTime(Pid(name)));
  absl::SleepFor(kHold);
  for (size_t i = 0; i < kDomains.size(); ++i) {
    EXPECT_EQ(VcpuCpuTime(Pid(kDomains[i])), frozen[i]) << kDomains[i] << " ran while frozen";
    EXPECT_EQ(*Dom(kDomains[i]).State(), VIR_DOMAIN_RUNNING) << kDomains[i];
  }
  ASSERT_TRUE(g->Release(kDeadline).ok());
  for (const std::string& name : kDomains) EXPECT_TRUE(CpuTimeAdvances(Pid(name), kProgressBound));

  orchestrator::NotifyResult done =
      g->Notify({.phase = AgentNotice::Phase::kComplete, .old_revision = 1, .new_revision = 2},
                absl::Seconds(10));
  for (const orchestrator::AgentReply& r : done.replies) EXPECT_TRUE(r.status.ok()) << r.status;
  for (const orchestrator::VmReport& vm : g->Report()) {
    fprintf(stderr, "%s: park %s, held %s, guest gap %s (baseline %s, max %s)\n", vm.name.c_str(),
            absl::FormatDuration(vm.park_latency).c_str(),
            absl::FormatDuration(vm.time_parked).c_str(),
            absl::FormatDuration(vm.guest_blackout).c_str(),
            absl::FormatDuration(vm.baseline_gap).c_str(), absl::FormatDuration(vm.max_gap).c_str());
    EXPECT_EQ(vm.pause, "freeze");
    EXPECT_EQ(vm.blackout_clock, "CLOCK_MONOTONIC") << vm.name;
    // The guest's clock reads stopped for the whole hold: its gap spans what we held.
    EXPECT_GE(vm.guest_blackout, kHold) << vm.name;
    EXPECT_EQ(vm.deadman_releases, 0u);
  }
  for (const std::string& name : kDomains) {
    EXPECT_TRUE(AgentAnswers(name)) << name;
    EXPECT_EQ(*Dom(name).State(), VIR_DOMAIN_RUNNING);
    EXPECT_EQ(CountSince(name, VIR_DOMAIN_EVENT_SUSPENDED, seq), 0) << name;
    EXPECT_EQ(CountSince(name, VIR_DOMAIN_EVENT_RESUMED, seq), 0) << name;
    EXPECT_FALSE(AnyVcpuFrozen(Pid(name)));
  }
}

// Starts freeze_holder over kDomains (60 s dead-man) and returns its pid once it says
// the domains are frozen; -1 if it did not.
pid_t StartHolder(const std::string& uri) {
  int out[2];
  if (pipe(out) != 0) return -1;
  const pid_t holder = fork();
  if (holder == 0) {
    dup2(out[1], STDOUT_FILENO);
    std::vector<std::string> args = {g_holder, "--uri=" + uri, "--deadman_ms=60000"};
    for (const std::string& d : kDomains) args.push_back("--domain=" + d);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  pollfd p = {.fd = out[0], .events = POLLIN};
  char buf[16] = {};
  const bool frozen = poll(&p, 1, 120000) == 1 && read(out[0], buf, sizeof(buf) - 1) > 0 &&
                      absl::StrContains(buf, "frozen");
  close(out[0]);
  if (!frozen) {
    kill(holder, SIGKILL);
    waitpid(holder, nullptr, 0);
    return -1;
  }
  return holder;
}

// The children of `parent` (from /proc/PID/stat's ppid field).
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(e.path().filename().string(), &pid)) continue;
    const std::string stat = ReadAll(absl::StrCat("/proc/", pid, "/stat"));
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    pid_t ppid = 0;
    if (f.size() > 1 && absl::SimpleAtoi(f[1], &ppid) && ppid == parent) out.push_back(pid);
  }
  return out;
}

TEST_F(FreezeE2eTest, KilledCoordinatorThawsAtOnceNotAtTheDeadline) {
  for (const std::string& name : kDomains) StartMeter(name);
  const pid_t holder = StartHolder(lab_->uri());
  ASSERT_GT(holder, 0) << "freeze_holder never froze";
  for (const std::string& name : kDomains) {
    EXPECT_TRUE(AnyVcpuFrozen(Pid(name))) << name;
    EXPECT_EQ(*Dom(name).State(), VIR_DOMAIN_RUNNING);
  }
  ASSERT_EQ(kill(holder, SIGKILL), 0);
  waitpid(holder, nullptr, 0);
  const absl::Time killed = absl::Now();
  for (const std::string& name : kDomains) {
    EXPECT_TRUE(CpuTimeAdvances(Pid(name), kProgressBound)) << name;
  }
  // Thawed by the guard's pidfd, not by its 60 s hold limit.
  EXPECT_LT(absl::Now() - killed, absl::Seconds(60));
  for (const std::string& name : kDomains) {
    EXPECT_FALSE(AnyVcpuFrozen(Pid(name))) << name;
    EXPECT_TRUE(AgentAnswers(name)) << name;
    StopMeter(name);
    // What a restarted ucoded does: put back any thread the dead holder had moved.
    absl::StatusOr<int> thawed =
        freeze::ThawLeftovers("/proc", ReadAll("/proc/self/mountinfo"), Pid(name));
    EXPECT_TRUE(thawed.ok()) << thawed.status();
    EXPECT_EQ(*thawed, 0) << "the guard left something frozen";
  }
}

// Coordinator and guard both killed: the domains stay frozen until a restarted ucoded's
// recovery (LibvirtGuests::ResumePaused over the journaled names) thaws them.
TEST_F(FreezeE2eTest, RestartedDaemonThawsWhatDeadCoordinatorAndGuardLeft) {
  const pid_t holder = StartHolder(lab_->uri());
  ASSERT_GT(holder, 0) << "freeze_holder never froze";
  const std::vector<pid_t> guards = ChildrenOf(holder);
  ASSERT_EQ(guards.size(), 1u);
  ASSERT_EQ(kill(guards[0], SIGKILL), 0);  // the guard first: nobody thaws
  ASSERT_EQ(kill(holder, SIGKILL), 0);
  waitpid(holder, nullptr, 0);
  for (const std::string& name : kDomains) EXPECT_TRUE(AnyVcpuFrozen(Pid(name))) << name;
  absl::StatusOr<std::unique_ptr<inventory::LibvirtGuests>> guests =
      inventory::LibvirtGuests::Open(lab_->uri(), {.names_or_uuids = kDomains});
  ASSERT_TRUE(guests.ok()) << guests.status();
  absl::StatusOr<std::string> account =
      (*guests)->ResumePaused(kDomains, "operations/1", kDeadline);
  ASSERT_TRUE(account.ok()) << account.status();
  fprintf(stderr, "recovery: %s\n", account->c_str());
  EXPECT_THAT(*account, HasSubstr("web1 thawed"));
  EXPECT_THAT(*account, HasSubstr("web2 thawed"));
  for (const std::string& name : kDomains) {
    EXPECT_FALSE(AnyVcpuFrozen(Pid(name))) << name;
    EXPECT_TRUE(AgentAnswers(name)) << name;
    EXPECT_EQ(*freeze::ThawLeftovers("/proc", ReadAll("/proc/self/mountinfo"), Pid(name)), 0);
  }
}

TEST_F(FreezeE2eTest, DomainPausedBySomeoneElseIsLeftAlone) {
  ASSERT_EQ(virDomainSuspend(Dom("web2").get()), 0);
  const uint64_t seq = conn().events().LastSeq();
  std::unique_ptr<LibvirtGuestGroup> g = Group(kDomains, PauseMode::kFreeze);
  ASSERT_NE(g, nullptr);
  absl::Status prepared = g->Prepare(kDeadline);
  ASSERT_TRUE(prepared.ok()) << prepared;
  ASSERT_TRUE(g->Park(kDeadline).ok());
  EXPECT_FALSE(AnyVcpuFrozen(Pid("web2")));
  ASSERT_TRUE(g->Release(kDeadline).ok());
  EXPECT_EQ(*Dom("web2").State(), VIR_DOMAIN_PAUSED);
  EXPECT_EQ(*Dom("web1").State(), VIR_DOMAIN_RUNNING);
  EXPECT_EQ(CountSince("web2", VIR_DOMAIN_EVENT_RESUMED, seq), 0);
  std::vector<orchestrator::VmReport> report = g->Report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_THAT(report[1].view_detail, HasSubstr("paused by someone else"));
  ASSERT_EQ(virDomainResume(Dom("web2").get()), 0);
  EXPECT_TRUE(AgentAnswers("web2"));
}

// QEMU names vCPU threads only with -name ...,debug-threads=on, which libvirt always
// passes; a later -name (QEMU merges the option, the last value wins) turns it off. The
// domain runs firmware only (no kernel): its vCPU threads exist, unnamed.
constexpr char kUnnamedThreadsXml[] = R"(
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>unnamed</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices><memballoon model='none'/></devices>
  <qemu:commandline>
    <qemu:arg value='-name'/>
    <qemu:arg value='guest=unnamed,debug-threads=off'/>
  </qemu:commandline>
</domain>)";

TEST_F(FreezeE2eTest, UnidentifiableVcpuThreadsAreAClearErrorAndNothingFreezes) {
  absl::StatusOr<libvirt::Domain> unnamed = lab_->BootXml("unnamed", kUnnamedThreadsXml);
  ASSERT_TRUE(unnamed.ok()) << unnamed.status();
  for (PauseMode mode : {PauseMode::kFreeze, PauseMode::kAuto}) {
    std::unique_ptr<LibvirtGuestGroup> g = Group({"web1", "unnamed"}, mode);
    ASSERT_NE(g, nullptr);
    absl::Status s = g->Prepare(kDeadline);
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
    const std::string message(s.message());
    EXPECT_THAT(message, HasSubstr("unnamed (QEMU pid"));
    EXPECT_THAT(message, HasSubstr("expected 2 vCPU threads"));
    EXPECT_THAT(message, HasSubstr("nothing was frozen"));
    EXPECT_FALSE(g->Park(kDeadline).ok());
    EXPECT_FALSE(AnyVcpuFrozen(Pid("web1")));
    EXPECT_EQ(*Dom("unnamed").State(), VIR_DOMAIN_RUNNING);
  }
  EXPECT_TRUE(conn().Destroy(*unnamed).ok());
  EXPECT_TRUE(AgentAnswers("web1"));
}

// The operator's path: `ucodectl -c URI apply` freezes by default, and its report names
// the pause and the guest's clock.
TEST_F(FreezeE2eTest, UcodectlApplyFreezesByDefault) {
  const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/images");
  absl::StatusOr<CommandResult> seeds = RunCommand({"mkdir", "-p", dir});
  seeds = RunCommand({g_make_fuzz_seeds, dir});
  ASSERT_TRUE(seeds.ok() && seeds->exit_code == 0);
  const uint64_t seq = conn().events().LastSeq();
  absl::StatusOr<CommandResult> run =
      RunCommand({g_ucodectl, "-c", lab_->uri(), "apply", dir + "/generated-00", "--domain",
                  "web1", "--domain", "web2", "--agent-timeout", "5000", "--json"});
  ASSERT_TRUE(run.ok()) << run.status();
  fprintf(stderr, "%s\n", run->out.c_str());
  EXPECT_EQ(run->exit_code, 0);
  json report = json::parse(run->out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run->out;
  EXPECT_TRUE(report["ok"].get<bool>()) << report["error"];
  ASSERT_EQ(report["vms"].size(), 2u);
  for (const json& vm : report["vms"]) {
    EXPECT_EQ(vm["pause"], "freeze") << vm;
    EXPECT_EQ(vm["guest_blackout_clock"], "CLOCK_MONOTONIC") << vm;
    EXPECT_EQ(vm["view"], "stale until restart") << vm;
  }
  for (const std::string& name : kDomains) {
    EXPECT_EQ(CountSince(name, VIR_DOMAIN_EVENT_SUSPENDED, seq), 0) << name;
    EXPECT_EQ(*Dom(name).State(), VIR_DOMAIN_RUNNING);
    EXPECT_FALSE(AnyVcpuFrozen(Pid(name)));
  }
}

// One operation over two ucode-vmm VMs (the rendezvous) and the two frozen domains.
TEST_F(FreezeE2eTest, MixedOperationEndsWithEverythingRunning) {
  SKIP_WITHOUT_KVM();
  std::vector<rendezvous::VmSpec> specs = Fleet(2, 1, "spin", 0x2b000000);
  TestFleet c(specs);
  ASSERT_TRUE(c.ok());
  orchestrator::CoordinatorGuestGroup vmm_group(*c, specs);
  std::unique_ptr<LibvirtGuestGroup> g = Group(kDomains, PauseMode::kAuto);
  ASSERT_NE(g, nullptr);

  auto host = platform::EmulatedPlatform::Create(platform::DemoHostConfig());
  ASSERT_TRUE(host.ok()) << host.status();
  absl::StatusOr<std::vector<uint8_t>> image =
      microcode::GenerateImage({.revision = 0x2b000001, .min_req_revision = 0x2b000000});
  ASSERT_TRUE(image.ok());
  orchestrator::UpdateOptions o;
  o.park_deadline = absl::Seconds(5);
  o.step_deadline = absl::Seconds(5);
  o.guest_view_timeout = absl::Seconds(20);
  o.guests_running_timeout = absl::Seconds(20);
  o.agent_timeout = absl::Seconds(10);
  o.operation = "mixed";
  std::vector<orchestrator::GuestGroup*> groups = {&vmm_group, g.get()};
  orchestrator::UpdateReport r = orchestrator::RunUpdate(**host, *std::move(image), groups, o, {});
  fprintf(stderr, "%s\n", orchestrator::ReportText(orchestrator::ToProto(r)).c_str());
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.host_touched);
  ASSERT_EQ(r.vms.size(), 4u);
  for (const orchestrator::VmReport& vm : r.vms) {
    if (vm.kind != "libvirt") continue;
    EXPECT_EQ(vm.pause, "freeze") << vm.name;
    EXPECT_EQ(vm.blackout_clock, "CLOCK_MONOTONIC") << vm.name;
  }
  for (const std::string& name : kDomains) {
    EXPECT_EQ(*Dom(name).State(), VIR_DOMAIN_RUNNING);
    EXPECT_FALSE(AnyVcpuFrozen(Pid(name)));
    EXPECT_TRUE(AgentAnswers(name)) << name;
  }
  auto views = c->ReadGuestViews();
  ASSERT_TRUE(views.ok()) << views.status();
  for (const rendezvous::VmResult& vm : *views) EXPECT_EQ(vm.revision_after, 0x2b000001u);
}

}  // namespace
}  // namespace ucode::testing

int main(int argc, char** argv) {
  namespace ut = ucode::testing;
  ut::g_options.daemon = true;
  ut::g_options.libvirt_cgroups = true;  // libvirt's own vcpuN cgroups, frozen in place
  ut::g_options.vcpus = 2;
  ut::g_options.memory_mib = 160;
  return ut::RunLabTests(argc, argv, ut::g_options,
                         {{"holder", &ut::g_holder},
                          {"ucodectl", &ut::g_ucodectl},
                          {"make_fuzz_seeds", &ut::g_make_fuzz_seeds}});
}
