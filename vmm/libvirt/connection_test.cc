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

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open(kTestUri);
    ASSERT_TRUE(c.ok()) << c.status();
    conn_ = *std::move(c);
    absl::StatusOr<std::vector<Domain>> doms = conn_->ListDomains({.all_running = true});
    ASSERT_TRUE(doms.ok()) << doms.status();
    ASSERT_EQ(doms->size(), 1u);
    doms_ = *std::move(doms);
  }

  std::unique_ptr<Connection> conn_;
  std::vector<Domain> doms_;  // every running domain: the one, "test"
};

TEST_F(ConnectionTest, ListsAllRunningDomains) {
  EXPECT_EQ(doms_[0].name(), "test");
  EXPECT_EQ(doms_[0].uuid().size(), 36u);
}

TEST_F(ConnectionTest, SelectsByNameAndUuidWithoutDuplicates) {
  absl::StatusOr<Domain> by_name = conn_->LookupDomain("test");
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  absl::StatusOr<std::vector<Domain>> doms =
      conn_->ListDomains({.names_or_uuids = {"test", by_name->uuid()}});
  ASSERT_TRUE(doms.ok()) << doms.status();
  ASSERT_EQ(doms->size(), 1u);
  EXPECT_EQ((*doms)[0].uuid(), by_name->uuid());
}

TEST_F(ConnectionTest, UnknownDomainIsNotFoundAndNamed) {
  absl::StatusOr<std::vector<Domain>> doms = conn_->ListDomains({.names_or_uuids = {"nope"}});
  EXPECT_TRUE(absl::IsNotFound(doms.status())) << doms.status();
  EXPECT_THAT(doms.status().message(), HasSubstr("'nope'"));
}

TEST_F(ConnectionTest, SuspendAndResumeAreAcknowledgedByEvents) {
  std::vector<DomainOpResult> parked = conn_->SuspendAll(doms_, kAck);
  ASSERT_EQ(parked.size(), 1u);
  EXPECT_TRUE(parked[0].status.ok()) << parked[0].status;
  EXPECT_FALSE(parked[0].already_in_state);
  EXPECT_GE(parked[0].ack_latency, absl::ZeroDuration());
  EXPECT_EQ(*doms_[0].State(), VIR_DOMAIN_PAUSED);

  std::vector<DomainOpResult> released = conn_->ResumeAll(doms_, kAck);
  ASSERT_EQ(released.size(), 1u);
  EXPECT_TRUE(released[0].status.ok()) << released[0].status;
  EXPECT_EQ(*doms_[0].State(), VIR_DOMAIN_RUNNING);

  const std::string& uuid = doms_[0].uuid();
  EXPECT_EQ(conn_->events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_SUSPENDED), 1);
  EXPECT_EQ(conn_->events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_RESUMED), 1);
}

TEST_F(ConnectionTest, AlreadyPausedDomainIsReportedNotWaitedFor) {
  ASSERT_TRUE(conn_->SuspendAll(doms_, kAck)[0].status.ok());

  std::vector<DomainOpResult> again = conn_->SuspendAll(doms_, kAck);
  EXPECT_TRUE(again[0].status.ok()) << again[0].status;
  EXPECT_TRUE(again[0].already_in_state);
  EXPECT_EQ(conn_->events().CountLifecycle(doms_[0].uuid(), VIR_DOMAIN_EVENT_SUSPENDED), 1);
}

TEST_F(ConnectionTest, ResumingAStoppedDomainFailsWithItsName) {
  ASSERT_TRUE(conn_->Destroy(doms_[0]).ok());
  EXPECT_TRUE(conn_->Destroy(doms_[0]).ok()) << "destroying a stopped domain is not an error";

  std::vector<DomainOpResult> r = conn_->ResumeAll(absl::MakeConstSpan(&doms_[0], 1), kAck);
  EXPECT_TRUE(absl::IsFailedPrecondition(r[0].status)) << r[0].status;
  EXPECT_THAT(r[0].status.message(), HasSubstr("test"));
}

TEST_F(ConnectionTest, AgentCallErrorNamesDomain) {
  // The mock driver has no guest agent.
  AgentCallResult r = CallAgent(doms_[0], R"({"execute":"guest-ping"})", absl::Seconds(1));
  EXPECT_NE(r.outcome, AgentOutcome::kReturned);
  EXPECT_THAT(r.status.message(), HasSubstr("test"));
}

TEST(ConnectionOpenTest, BadUriFailsWithTheUri) {
  absl::StatusOr<std::unique_ptr<Connection>> c = Connection::Open("bogus:///nowhere");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("bogus:///nowhere"));
}

}  // namespace
}  // namespace ucode::libvirt
