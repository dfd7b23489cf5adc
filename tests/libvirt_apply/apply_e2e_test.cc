// End to end: `ucodectl -c URI apply` on the emulated host around four real libvirt
// domains (QEMU TCG, Debian's kernel, busybox initramfs; tests/linux_guest):
//   agent-a, agent-b  ucode-agent answering normally;
//   no-agent          no agent channel at all;
//   hung-agent        ucode-agent whose prepare hook SIGSTOPs the agent: it never answers
//                     again (neither prepare nor complete nor status).
// The test and ucodectl are two processes on one libvirt host, so the host is a private
// libvirtd (GuestLabOptions::daemon): an embedded driver would belong to one process.
// The test keeps its own connection open throughout and counts lifecycle events.
//
// Arguments (BUILD.bazel): --agent= --build_initramfs= --render_domain_xml= --ucodectl=
// --make_fuzz_seeds=
#include <libvirt/libvirt.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/libvirt_guest/guest_lab.h"
#include "tests/libvirt_guest/subprocess.h"
#include "vmm/libvirt/agent_call.h"

namespace ucode::testing {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

GuestLabOptions g_options;
std::string g_ucodectl;
std::string g_make_fuzz_seeds;

// Bounds, not expectations.
constexpr absl::Duration kAgentBootTimeout = absl::Seconds(240);
constexpr char kAgentTimeoutMs[] = "2000";

// Runs as the guest's prepare hook: stops its parent, the agent, for good. A stopped
// agent keeps its port open, so libvirt sees a connected agent that never answers.
constexpr char kFreezeAgentHook[] = "#!/bin/sh\nkill -STOP \"$PPID\"\nexit 0\n";
constexpr char kHookDir[] = "/etc/ucode-e2e/prepare.d";

const std::vector<std::string> kAll = {"agent-a", "agent-b", "no-agent", "hung-agent"};
const std::vector<std::string> kAgents = {"agent-a", "agent-b"};

std::string Hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

const json* FindBy(const json& array, const char* key, const std::string& value) {
  for (const json& e : array) {
    if (e.value(key, "") == value) return &e;
  }
  return nullptr;
}

class ApplyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = GuestLab::MissingPrerequisites(g_options);
    if (!missing.empty()) GTEST_SKIP() << missing;
    if (access("/usr/sbin/libvirtd", X_OK) != 0) GTEST_SKIP() << "no /usr/sbin/libvirtd";
    absl::StatusOr<std::unique_ptr<GuestLab>> lab = GuestLab::Create(g_options);
    ASSERT_TRUE(lab.ok()) << lab.status();
    lab_ = *std::move(lab);
  }

  void BootAll() {
    ASSERT_TRUE(lab_->Boot("agent-a").ok());
    ASSERT_TRUE(lab_->Boot("agent-b").ok());
    ASSERT_TRUE(lab_->Boot("no-agent", {.agent_channel = false}).ok());
    BootOptions hung;
    hung.agent_args = {"--prepare-dir", kHookDir};
    hung.files = {{absl::StrCat(kHookDir, "/50-freeze-agent"), kFreezeAgentHook}};
    ASSERT_TRUE(lab_->Boot("hung-agent", hung).ok());
    for (const char* name : {"agent-a", "agent-b", "hung-agent"}) {
      absl::Status s = conn().WaitForAgent(Dom(name), kAgentBootTimeout);
      ASSERT_TRUE(s.ok()) << s << "\nconsole of " << name << ":\n" << lab_->ConsoleLog(name);
    }
  }

  std::string MakeImage() {
    const std::string dir = absl::StrCat(getenv("TEST_TMPDIR"), "/images");
    std::filesystem::create_directories(dir);
    absl::StatusOr<CommandResult> r = RunCommand({g_make_fuzz_seeds, dir});
    EXPECT_TRUE(r.ok() && r->exit_code == 0);
    return dir + "/generated-00";  // sig 0x806f8 pf 0x87 rev 0x2b000001: the emulated host's
  }

  libvirt::Connection& conn() { return lab_->connection(); }
  libvirt::Domain Dom(const std::string& name) { return *conn().LookupDomain(name); }

  // Every lifecycle event up to now is in the log once the resume of each domain (sent
  // by ucodectl, broadcast to us by libvirtd) has arrived.
  void AwaitResumed(const std::string& name, uint64_t after) {
    (void)conn().events().WaitFor(libvirt::DomainEvent::Kind::kLifecycle, Dom(name).uuid(),
                                  VIR_DOMAIN_EVENT_RESUMED, after, absl::Now() + absl::Seconds(30));
  }

  // Lifecycle events of `type` for the domain after sequence number `after` (starting a
  // domain emits RESUMED too: libvirt starts QEMU paused and continues it).
  int CountSince(const std::string& name, int type, uint64_t after) {
    return conn().events().CountLifecycle(Dom(name).uuid(), type, after);
  }

  std::unique_ptr<GuestLab> lab_;
};

TEST_F(ApplyE2eTest, ApplyAroundFourDomainsWithAgentsMissingAndHung) {
  BootAll();
  if (HasFatalFailure()) return;
  const std::string image = MakeImage();
  const uint64_t before = conn().events().LastSeq();

  std::vector<std::string> argv = {g_ucodectl, "-c", lab_->uri(), "apply", image};
  for (const std::string& d : kAll) {
    argv.push_back("--domain");
    argv.push_back(d);
  }
  // This test is about libvirt's suspend/resume path (the freezer has its own test,
  // tests/libvirt_freeze).
  for (const char* a : {"--pause", "suspend", "--agent-timeout", kAgentTimeoutMs, "--json"}) {
    argv.push_back(a);
  }
  absl::StatusOr<CommandResult> run = RunCommand(argv);
  ASSERT_TRUE(run.ok()) << run.status();
  fprintf(stderr, "ucodectl apply --json:\n%s\n", run->out.c_str());
  EXPECT_EQ(run->exit_code, 0);
  json report = json::parse(run->out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run->out;
  EXPECT_TRUE(report["ok"].get<bool>()) << report["error"];
  EXPECT_TRUE(report["host_touched"].get<bool>());
  const int64_t old_rev = report["image"]["old_revision"];
  const int64_t new_rev = report["image"]["new_revision"];
  EXPECT_GT(new_rev, old_rev);

  // Each domain suspended and resumed exactly once, as this connection saw it.
  for (const std::string& name : kAll) {
    AwaitResumed(name, before);
    EXPECT_EQ(CountSince(name, VIR_DOMAIN_EVENT_SUSPENDED, before), 1) << name;
    EXPECT_EQ(CountSince(name, VIR_DOMAIN_EVENT_RESUMED, before), 1) << name;
    EXPECT_EQ(*Dom(name).State(), VIR_DOMAIN_RUNNING) << name;
  }

  // Every guest view is reported stale, never claimed.
  ASSERT_EQ(report["vms"].size(), kAll.size());
  for (const json& vm : report["vms"]) {
    EXPECT_EQ(vm["kind"], "libvirt");
    EXPECT_EQ(vm["pause"], "suspend");
    EXPECT_EQ(vm["view"], "stale until restart") << vm;
    EXPECT_THAT(vm["view_detail"].get<std::string>(), HasSubstr("QEMU keeps the revision"));
    EXPECT_FALSE(vm["guest_measured"].get<bool>());
    EXPECT_GT(vm["time_parked_us"].get<int64_t>(), 0) << vm;
  }

  // Agents: two answered both phases; the missing and the hung one are reported as such
  // (their waits are bounded by --agent-timeout: the operation still succeeded).
  for (const char* phase : {"agents_prepare", "agents_complete"}) {
    const json& replies = report[phase];
    ASSERT_EQ(replies.size(), kAll.size()) << phase;
    for (const std::string& name : kAgents) {
      const json* r = FindBy(replies, "vm", name);
      ASSERT_NE(r, nullptr) << phase << " " << name;
      EXPECT_TRUE((*r)["answered"].get<bool>()) << *r;
      EXPECT_TRUE((*r)["ok"].get<bool>()) << *r;
    }
    const json* none = FindBy(replies, "vm", "no-agent");
    ASSERT_NE(none, nullptr);
    EXPECT_FALSE((*none)["answered"].get<bool>());
    EXPECT_EQ((*none)["message"], "no-agent") << *none;
    const json* hung = FindBy(replies, "vm", "hung-agent");
    ASSERT_NE(hung, nullptr);
    EXPECT_FALSE((*hung)["answered"].get<bool>());
    EXPECT_EQ((*hung)["message"], "timeout") << *hung;
  }

  // What the agents recorded, read back through libvirt as an operator would.
  for (const std::string& name : kAgents) {
    libvirt::AgentCallResult st = libvirt::CallAgent(
        Dom(name), R"({"execute":"guest-ucode-status"})", absl::Seconds(10));
    ASSERT_EQ(st.outcome, libvirt::AgentOutcome::kReturned) << st.status;
    json status = json::parse(st.reply, nullptr, false)["return"];
    fprintf(stderr, "%s guest-ucode-status: %s\n", name.c_str(), status.dump().c_str());
    for (const char* rec : {"last-prepare", "last-complete"}) {
      ASSERT_TRUE(status.contains(rec)) << name << " " << status;
      EXPECT_EQ(status[rec]["old-revision"], old_rev) << name << " " << rec;
      EXPECT_EQ(status[rec]["new-revision"], new_rev) << name << " " << rec;
      EXPECT_EQ(status[rec]["host"], Hostname()) << name << " " << rec;
      EXPECT_EQ(status[rec]["mode"], "strict") << name << " " << rec;
    }
    EXPECT_EQ(status["last-prepare"]["status"], "ready");
    EXPECT_EQ(status["last-complete"]["status"], "recorded");
  }
  EXPECT_EQ(libvirt::CallAgent(Dom("agent-a"), R"({"execute":"guest-no-such-command"})",
                               absl::Seconds(10))
                .outcome,
            libvirt::AgentOutcome::kErrorReply);
  EXPECT_EQ(libvirt::CallAgent(Dom("hung-agent"), R"({"execute":"guest-ping"})", absl::Seconds(1))
                .outcome,
            libvirt::AgentOutcome::kTimeout);
  EXPECT_EQ(libvirt::CallAgent(Dom("no-agent"), R"({"execute":"guest-ping"})", absl::Seconds(1))
                .outcome,
            libvirt::AgentOutcome::kNoAgent);
}

TEST_F(ApplyE2eTest, UsageErrorsExit2AndUnknownDomainFailsUntouched) {
  const std::string image = MakeImage();
  absl::StatusOr<CommandResult> r = RunCommand({g_ucodectl, "-c", lab_->uri(), "apply", image});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);  // neither --domain nor --all
  r = RunCommand({g_ucodectl, "-c", lab_->uri(), "apply", image, "--all", "--mode", "slow"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  r = RunCommand({g_ucodectl, "-c", lab_->uri(), "apply", image, "--domain", "nope", "--json"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 1);
  json j = json::parse(r->out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->out;
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("'nope'"));
}

}  // namespace
}  // namespace ucode::testing

int main(int argc, char** argv) {
  namespace ut = ucode::testing;
  ut::g_options.daemon = true;
  ut::g_options.memory_mib = 160;
  return ut::RunLabTests(argc, argv, ut::g_options,
                         {{"ucodectl", &ut::g_ucodectl},
                          {"make_fuzz_seeds", &ut::g_make_fuzz_seeds}});
}
