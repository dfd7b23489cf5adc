#include "vmm/orchestrator/libvirt_group.h"

#include <libvirt/libvirt.h>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/libvirt/park_marker.h"

namespace ucode::orchestrator {
namespace {

using ::testing::HasSubstr;

// libvirt's mock driver (https://libvirt.org/drvtest.html): one running domain "test";
// we add a second running one and a defined-but-shut-off one.
constexpr absl::Duration kDeadline = absl::Seconds(10);

constexpr char kSecondXml[] =
    "<domain type='test'><name>second</name><memory>65536</memory><vcpu>2</vcpu>"
    "<os><type>hvm</type></os></domain>";
constexpr char kOffXml[] =
    "<domain type='test'><name>off</name><memory>65536</memory><vcpu>1</vcpu>"
    "<os><type>hvm</type></os></domain>";

class LibvirtGroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<libvirt::Connection>> c =
        libvirt::Connection::Open("test:///default");
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = *std::move(c);
    ASSERT_TRUE(conn_->CreateTransient(kSecondXml).ok());
  }

  // The mock driver's state is shared by every connection of the process and outlives
  // this one while anything (an event callback, a background agent call) still holds a
  // reference: put it back as it was, so the next test starts from the same state.
  void TearDown() override {
    if (conn_ == nullptr) return;
    if (absl::StatusOr<libvirt::Domain> d = conn_->LookupDomain("second"); d.ok()) {
      conn_->Destroy(*d).IgnoreError();  // transient: gone once destroyed
    }
    if (absl::StatusOr<libvirt::Domain> d = conn_->LookupDomain("off"); d.ok()) {
      virDomainUndefine(d->get());
    }
    if (absl::StatusOr<libvirt::Domain> d = conn_->LookupDomain("test");
        d.ok() && d->State().value_or(0) == libvirt::kDomainPaused) {
      static_cast<void>(conn_->ResumeAll({&*d, 1}, kDeadline));
    }
  }

  std::unique_ptr<LibvirtGuestGroup> Group(std::vector<std::string> names,
                                           std::string operation = "") {
    absl::StatusOr<std::vector<libvirt::Domain>> doms =
        conn_->ListDomains({.names_or_uuids = std::move(names)});
    EXPECT_TRUE(doms.ok()) << doms.status();
    if (!doms.ok()) return nullptr;
    absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> g =
        LibvirtGuestGroup::Create(*conn_, *std::move(doms),
                                  {.host = "h1", .mode = "strict", .operation = operation});
    EXPECT_TRUE(g.ok()) << g.status();
    return g.ok() ? *std::move(g) : nullptr;
  }

  std::optional<std::string> Marker(const std::string& name) {
    return *libvirt::ReadParkMarker(*conn_->LookupDomain(name));
  }
  int State(const std::string& name) { return *conn_->LookupDomain(name)->State(); }
  int Count(const std::string& name, int type) {
    return conn_->events().CountLifecycle(conn_->LookupDomain(name)->uuid(), type);
  }

  std::unique_ptr<libvirt::Connection> conn_;
};

TEST_F(LibvirtGroupTest, ParksReleasesOnceAndMarksViewsStale) {
  auto g = Group({"test", "second"});
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->kind(), "libvirt");
  EXPECT_EQ(g->total_vcpus(), 2 + *conn_->LookupDomain("test")->VcpuCount());
  ASSERT_TRUE(g->Prepare(kDeadline).ok());
  // The mock driver's domains have no QEMU process to freeze: --pause auto suspends, and
  // says why.
  EXPECT_EQ(g->pause_name(), "suspend");
  ASSERT_EQ(g->Notes().size(), 2u);
  EXPECT_THAT(g->Notes()[0], HasSubstr("suspended, not frozen: freeze: test: no QEMU process"));
  ASSERT_TRUE(g->Park(kDeadline).ok());
  EXPECT_EQ(State("test"), VIR_DOMAIN_PAUSED);
  EXPECT_EQ(State("second"), VIR_DOMAIN_PAUSED);
  GuestViewResult views = g->SetRevision(0x42, kDeadline);
  EXPECT_TRUE(views.status.ok()) << views.status;
  ASSERT_EQ(views.vms.size(), 2u);
  for (const VmViewOutcome& v : views.vms) {
    EXPECT_EQ(v.status, ViewStatus::kStaleUntilRestart);
    EXPECT_EQ(v.detail, kQemuStaleDetail);
  }
  ASSERT_TRUE(g->Release(kDeadline).ok());
  EXPECT_TRUE(g->Release(kDeadline).ok());  // nothing parked: still OK, no second resume
  EXPECT_TRUE(g->VerifyGuestViews(0x42, kDeadline).status.ok());
  for (const char* name : {"test", "second"}) {
    EXPECT_EQ(State(name), VIR_DOMAIN_RUNNING);
    EXPECT_EQ(Count(name, VIR_DOMAIN_EVENT_SUSPENDED), 1) << name;
    EXPECT_EQ(Count(name, VIR_DOMAIN_EVENT_RESUMED), 1) << name;
  }
  std::vector<VmReport> report = g->Report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[1].name, "second");
  EXPECT_EQ(report[1].vcpus, 2);
  EXPECT_FALSE(report[1].guest_measured);
  EXPECT_EQ(report[1].view, ViewStatus::kStaleUntilRestart);
  EXPECT_GT(report[1].park_latency, absl::ZeroDuration());
  EXPECT_GT(report[1].time_parked, absl::ZeroDuration());
}

TEST_F(LibvirtGroupTest, DomainPausedBySomeoneElseIsLeftPaused) {
  ASSERT_EQ(virDomainSuspend(conn_->LookupDomain("second")->get()), 0);
  auto g = Group({"test", "second"});
  ASSERT_NE(g, nullptr);
  ASSERT_TRUE(g->Park(kDeadline).ok());
  (void)g->SetRevision(0x42, kDeadline);
  ASSERT_TRUE(g->Release(kDeadline).ok());
  EXPECT_EQ(State("test"), VIR_DOMAIN_RUNNING);
  EXPECT_EQ(State("second"), VIR_DOMAIN_PAUSED);
  EXPECT_EQ(Count("second", VIR_DOMAIN_EVENT_RESUMED), 0);
  std::vector<VmReport> report = g->Report();
  ASSERT_EQ(report.size(), 2u);
  EXPECT_THAT(report[1].view_detail, HasSubstr("paused by someone else"));
}

// Recovery's proof (vmm/libvirt/park_marker.h): the marker names the operation exactly
// while the domain is held by it, and a domain someone else paused never gets one.
TEST_F(LibvirtGroupTest, SuspendedDomainsCarryTheOperationsMarkerWhileHeld) {
  ASSERT_EQ(virDomainSuspend(conn_->LookupDomain("second")->get()), 0);
  auto g = Group({"test", "second"}, "operations/5");
  ASSERT_NE(g, nullptr);
  ASSERT_TRUE(g->Park(kDeadline).ok());
  EXPECT_EQ(Marker("test"), "operations/5");
  EXPECT_EQ(Marker("second"), std::nullopt);
  ASSERT_TRUE(g->Release(kDeadline).ok());
  EXPECT_EQ(State("test"), VIR_DOMAIN_RUNNING);
  EXPECT_EQ(Marker("test"), std::nullopt);
  EXPECT_EQ(Marker("second"), std::nullopt);
}

TEST_F(LibvirtGroupTest, ParkIsAllOrNothing) {
  virDomainPtr off = virDomainDefineXML(conn_->get(), kOffXml);
  ASSERT_NE(off, nullptr);
  virDomainFree(off);
  auto g = Group({"test", "off"});
  ASSERT_NE(g, nullptr);
  absl::Status s = g->Park(kDeadline);
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("off"));
  EXPECT_EQ(State("test"), VIR_DOMAIN_RUNNING);
  EXPECT_EQ(Count("test", VIR_DOMAIN_EVENT_SUSPENDED), 1);
  EXPECT_EQ(Count("test", VIR_DOMAIN_EVENT_RESUMED), 1);
  EXPECT_FALSE(g->Prepare(kDeadline).ok());  // "off" is neither running nor paused
}

TEST_F(LibvirtGroupTest, ExplicitFreezeOfDomainsWithoutQemuFailsAndFreezesNothing) {
  absl::StatusOr<std::vector<libvirt::Domain>> doms = conn_->ListDomains({.names_or_uuids = {"test"}});
  ASSERT_TRUE(doms.ok());
  absl::StatusOr<std::unique_ptr<LibvirtGuestGroup>> g =
      LibvirtGuestGroup::Create(*conn_, *std::move(doms), {.pause = PauseMode::kFreeze});
  ASSERT_TRUE(g.ok()) << g.status();
  absl::Status s = (*g)->Prepare(kDeadline);
  EXPECT_THAT(s.message(), HasSubstr("nothing was frozen"));
  EXPECT_FALSE((*g)->Park(kDeadline).ok());
  EXPECT_EQ(State("test"), VIR_DOMAIN_RUNNING);
  EXPECT_EQ(Count("test", VIR_DOMAIN_EVENT_SUSPENDED), 0);
}

TEST_F(LibvirtGroupTest, NotifyWithoutAgentSupportIsBoundedAndNamed) {
  auto g = Group({"test", "second"});
  ASSERT_NE(g, nullptr);
  NotifyResult r = g->Notify({.phase = AgentNotice::Phase::kPrepare, .old_revision = 1,
                              .new_revision = 2},
                             absl::Seconds(2));
  ASSERT_EQ(r.replies.size(), 2u);
  for (const AgentReply& a : r.replies) {
    EXPECT_FALSE(a.answered);
    EXPECT_FALSE(a.status.ok());
    EXPECT_FALSE(a.message.empty());
  }
}

TEST_F(LibvirtGroupTest, AgentCommandsCarryRevisionsHostModeAndDeadline) {
  auto g = Group({"test"});
  ASSERT_NE(g, nullptr);
  nlohmann::json prep = nlohmann::json::parse(g->AgentCommandJson(
      {.phase = AgentNotice::Phase::kPrepare, .old_revision = 0x10, .new_revision = 0x11},
      absl::Seconds(4)));
  EXPECT_EQ(prep["execute"], "guest-ucode-prepare");
  EXPECT_EQ(prep["arguments"]["deadline-ms"], 1500);  // 3/4 of the 2 s per-call timeout
  EXPECT_EQ(prep["arguments"]["new-revision"], 0x11);
  nlohmann::json done = nlohmann::json::parse(g->AgentCommandJson(
      {.phase = AgentNotice::Phase::kComplete, .old_revision = 0x10, .new_revision = 0x11},
      absl::Seconds(4)));
  EXPECT_EQ(done["execute"], "guest-ucode-complete");
  EXPECT_EQ(done["arguments"]["old-revision"], 0x10);
  EXPECT_EQ(done["arguments"]["new-revision"], 0x11);
  EXPECT_EQ(done["arguments"]["host"], "h1");
  EXPECT_EQ(done["arguments"]["mode"], "strict");
  EXPECT_FALSE(done["arguments"].contains("deadline-ms"));
}

}  // namespace
}  // namespace ucode::orchestrator
