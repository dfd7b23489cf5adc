// libvirt + QEMU TCG + a real Linux guest running ucode-agent, through vmm/libvirt:
// boot one domain under the embedded QEMU driver, wait for its agent, park and release
// it with lifecycle events as acknowledgements, and query the agent.
//
// Arguments (from BUILD.bazel): --agent=PATH --build_initramfs=PATH --render_domain_xml=PATH
#include <libvirt/libvirt.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/libvirt_guest/guest_lab.h"
#include "vmm/libvirt/agent_call.h"

namespace ucode::testing {
namespace {

using ::testing::HasSubstr;
using libvirt::Domain;
using libvirt::DomainOpResult;

GuestLabOptions g_options;

// Bounds, not expectations: a TCG boot takes ~10 s on the 2-core development machines.
constexpr absl::Duration kAgentBootTimeout = absl::Seconds(120);
constexpr absl::Duration kAckTimeout = absl::Seconds(30);
constexpr absl::Duration kAgentTimeout = absl::Seconds(10);
constexpr int kParkReleaseRounds = 5;
constexpr char kDomain[] = "ucode-guest-1";

class LibvirtGuestTest : public LabSuite {
 protected:
  static void SetUpTestSuite() {
    if (!CreateLab(g_options)) return;
    const absl::Time start = absl::Now();
    if (!BootAll({kDomain}, kAgentBootTimeout)) return;
    // A measurement for the record, never asserted (these machines are shared and noisy).
    fprintf(stderr, "MEASURE boot_to_agent_ping_ms=%.0f\n",
            absl::ToDoubleMilliseconds(absl::Now() - start));
    domain_ = new Domain(*lab_->connection().LookupDomain(kDomain));
  }
  static void TearDownTestSuite() {
    delete domain_;
    domain_ = nullptr;
    LabSuite::TearDownTestSuite();
  }

  static inline Domain* domain_ = nullptr;
};

TEST_F(LibvirtGuestTest, AgentAnswersPingThroughLibvirt) {
  libvirt::AgentCallResult r =
      libvirt::CallAgent(*domain_, R"({"execute":"guest-ping"})", kAgentTimeout);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_THAT(r.reply, HasSubstr("\"return\""));
}

TEST_F(LibvirtGuestTest, GuestInfoListsTheUcodeCommands) {
  libvirt::AgentCallResult r =
      libvirt::CallAgent(*domain_, R"({"execute":"guest-info"})", kAgentTimeout);
  ASSERT_TRUE(r.status.ok()) << r.status;
  for (const char* cmd : {"guest-ping", "guest-sync", "guest-ucode-prepare",
                          "guest-ucode-complete", "guest-ucode-status"}) {
    EXPECT_THAT(r.reply, HasSubstr(absl::StrCat("\"", cmd, "\""))) << r.reply;
  }
}

TEST_F(LibvirtGuestTest, ParkAndReleaseAreAcknowledgedByLifecycleEvents) {
  const std::string& uuid = domain_->uuid();
  const int suspended_before = conn().events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_SUSPENDED);
  const int resumed_before = conn().events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_RESUMED);
  std::vector<double> round_ms;
  for (int i = 0; i < kParkReleaseRounds; ++i) {
    std::vector<DomainOpResult> parked =
        conn().SuspendAll(absl::MakeConstSpan(domain_, 1), kAckTimeout);
    ASSERT_EQ(parked.size(), 1u);
    ASSERT_TRUE(parked[0].status.ok()) << parked[0].status;
    EXPECT_FALSE(parked[0].already_in_state);
    EXPECT_EQ(*domain_->State(), VIR_DOMAIN_PAUSED);

    std::vector<DomainOpResult> released =
        conn().ResumeAll(absl::MakeConstSpan(domain_, 1), kAckTimeout);
    ASSERT_EQ(released.size(), 1u);
    ASSERT_TRUE(released[0].status.ok()) << released[0].status;
    EXPECT_EQ(*domain_->State(), VIR_DOMAIN_RUNNING);
    round_ms.push_back(absl::ToDoubleMilliseconds(parked[0].ack_latency) +
                       absl::ToDoubleMilliseconds(released[0].ack_latency));
  }
  EXPECT_EQ(conn().events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_SUSPENDED),
            suspended_before + kParkReleaseRounds);
  EXPECT_EQ(conn().events().CountLifecycle(uuid, VIR_DOMAIN_EVENT_RESUMED),
            resumed_before + kParkReleaseRounds);
  std::sort(round_ms.begin(), round_ms.end());
  fprintf(stderr, "MEASURE suspend_resume_ack_median_ms=%.2f (n=%d)\n",
          round_ms[round_ms.size() / 2], kParkReleaseRounds);

  // The guest survived: its agent still answers.
  absl::Status ping =
      libvirt::CallAgent(*domain_, R"({"execute":"guest-ping"})", kAgentTimeout).status;
  EXPECT_TRUE(ping.ok()) << ping;
}

TEST_F(LibvirtGuestTest, AgentOfAParkedGuestFailsInsteadOfBlocking) {
  ASSERT_TRUE(conn().SuspendAll(absl::MakeConstSpan(domain_, 1), kAckTimeout)[0].status.ok());
  absl::Status ping =
      libvirt::CallAgent(*domain_, R"({"execute":"guest-ping"})", absl::Seconds(1)).status;
  EXPECT_FALSE(ping.ok());
  EXPECT_THAT(ping.message(), HasSubstr(kDomain));
  ASSERT_TRUE(conn().ResumeAll(absl::MakeConstSpan(domain_, 1), kAckTimeout)[0].status.ok());
}

TEST_F(LibvirtGuestTest, SelectsTheDomainByNameUuidAndAllRunning) {
  absl::StatusOr<std::vector<Domain>> all = conn().ListDomains({.all_running = true});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].name(), kDomain);
  absl::StatusOr<std::vector<Domain>> by_uuid =
      conn().ListDomains({.names_or_uuids = {domain_->uuid()}});
  ASSERT_TRUE(by_uuid.ok()) << by_uuid.status();
  EXPECT_EQ((*by_uuid)[0].name(), kDomain);
}

}  // namespace
}  // namespace ucode::testing

int main(int argc, char** argv) {
  return ucode::testing::RunLabTests(argc, argv, ucode::testing::g_options);
}
