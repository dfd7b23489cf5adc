#include "vmm/libvirt/connection.h"

#include <libvirt/libvirt.h>

#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/libvirt/agent_call.h"

namespace ucode::libvirt {
namespace {

using ::testing::HasSubstr;

// test:///default is libvirt's in-process mock driver with one running domain, "test"
// (https://libvirt.org/drvtest.html). Each virConnectOpen gets a fresh copy of it.
constexpr absl::string_view kTestUri = "test:///default";
constexpr absl::Duration kAck = absl::Seconds(10);

std::unique_ptr<Connection> OpenTest() {
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(kTestUri);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

TEST(ConnectionTest, ListsAllRunningDomains) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<std::vector<Domain>> doms = conn->ListDomains({.all_running = true});
  ASSERT_TRUE(doms.ok()) << doms.status();
  ASSERT_EQ(doms->size(), 1u);
  EXPECT_EQ((*doms)[0].name(), "test");
  EXPECT_EQ((*doms)[0].uuid().size(), 36u);
}

TEST(ConnectionTest, SelectsByNameAndUuidWithoutDuplicates) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<Domain> by_name = conn->LookupDomain("test");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  absl::StatusOr<std::vector<Domain>> doms =
      conn->ListDomains({.names_or_uuids = {"test", by_name->uuid()}});
  ASSERT_TRUE(doms.ok()) << doms.status();
  ASSERT_EQ(doms->size(), 1u);
  EXPECT_EQ((*doms)[0].uuid(), by_name->uuid());
}

TEST(ConnectionTest, UnknownDomainIsNotFoundAndNamed) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<std::vector<Domain>> doms = conn->ListDomains({.names_or_uuids = {"nope"}});
  EXPECT_TRUE(absl::IsNotFound(doms.status())) << doms.status();
  EXPECT_THAT(doms.status().message(), HasSubstr("'nope'"));
}

TEST(ConnectionTest, SuspendAndResumeAreAcknowledgedByEvents) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<std::vector<Domain>> doms = conn->ListDomains({.all_running = true});
  ASSERT_TRUE(doms.ok()) << doms.status();

  std::vector<DomainOpResult> parked = conn->SuspendAll(*doms, kAck);
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_TRUE(parked[0].status.ok()) << parked[0].status;
  EXPECT_FALSE(parked[0].already_in_state);
  EXPECT_GE(parked[0].ack_latency, absl::ZeroDuration());
  EXPECT_EQ(*(*doms)[0].State(), VIR_DOMAIN_PAUSED);

  std::vector<DomainOpResult> released = conn->ResumeAll(*doms, kAck);
  ASSERT_EQ(released.size(), 1u);
  EXPECT_TRUE(released[0].status.ok()) << released[0].status;
  EXPECT_EQ(*(*doms)[0].State(), VIR_DOMAIN_RUNNING);

  const std::string& uuid = (*doms)[0].uuid();
  EXPECT_EQ(conn->events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_SUSPENDED), 1);
  EXPECT_EQ(conn->events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_RESUMED), 1);
}

TEST(ConnectionTest, AlreadyPausedDomainIsReportedNotWaitedFor) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<std::vector<Domain>> doms = conn->ListDomains({.all_running = true});
  ASSERT_TRUE(doms.ok()) << doms.status();
  ASSERT_TRUE(conn->SuspendAll(*doms, kAck)[0].status.ok());

  std::vector<DomainOpResult> again = conn->SuspendAll(*doms, kAck);
  EXPECT_TRUE(again[0].status.ok()) << again[0].status;
  EXPECT_TRUE(again[0].already_in_state);
  EXPECT_EQ(conn->events().CountLifecycle((*doms)[0].uuid(), VIR_DOMAIN_EVENT_SUSPENDED), 1);
}

TEST(ConnectionTest, ResumingAStoppedDomainFailsWithItsName) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<Domain> dom = conn->LookupDomain("test");
  ASSERT_TRUE(dom.ok()) << dom.status();
  ASSERT_TRUE(conn->Destroy(*dom).ok());
  EXPECT_TRUE(conn->Destroy(*dom).ok()) << "destroying a stopped domain is not an error";

  std::vector<DomainOpResult> r = conn->ResumeAll(absl::MakeConstSpan(&*dom, 1), kAck);
  EXPECT_TRUE(absl::IsFailedPrecondition(r[0].status)) << r[0].status;
  EXPECT_THAT(r[0].status.message(), HasSubstr("test"));
}

TEST(ConnectionTest, AgentCallErrorNamesDomain) {
  auto conn = OpenTest();
  ASSERT_NE(conn, nullptr);
  absl::StatusOr<Domain> dom = conn->LookupDomain("test");
  ASSERT_TRUE(dom.ok()) << dom.status();
  // The mock driver has no guest agent.
  AgentCallResult r = CallAgent(*dom, R"({"execute":"guest-ping"})", absl::Seconds(1));
  EXPECT_NE(r.outcome, AgentOutcome::kReturned);
  EXPECT_THAT(r.status.message(), HasSubstr("test"));
}

TEST(ConnectionTest, BadUriFailsWithTheUri) {
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open("bogus:///nowhere");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("bogus:///nowhere"));
}

}  // namespace
}  // namespace ucode::libvirt
