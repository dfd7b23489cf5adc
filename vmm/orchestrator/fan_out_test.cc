// FanOut (one named thread per item, one deadline) and the cross-group park over fake
// groups: a group that fails to park leaves nothing parked and is named in the error.
#include "vmm/orchestrator/fan_out.h"

#include <pthread.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/orchestrator/clock_group.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ThreadName() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

TEST(FanOutTest, EachItemRunsOnItsNamedThreadAgainstOneDeadline) {
  absl::Mutex mu;
  std::vector<std::string> names(3);
  std::set<int64_t> deadlines;
  FanOut(
      3, absl::Seconds(30), [](size_t i) { return absl::StrCat("item-with-a-long-name-", i); },
      [&](const FanOutItem& item) {
        absl::MutexLock lock(&mu);
        names[item.index] = ThreadName();
        deadlines.insert(absl::ToUnixNanos(item.deadline));
      });
  // Cut to the 15 bytes Linux keeps, so the index is lost here: the prefix is what stays.
  for (const std::string& n : names) EXPECT_EQ(n, "item-with-a-lon");
  EXPECT_EQ(deadlines.size(), 1u);
  EXPECT_GT(*deadlines.begin(), absl::ToUnixNanos(absl::Now()));
}

TEST(FanOutTest, OneItemRunsInlineAndKeepsTheCallersThreadName) {
  const std::string mine = ThreadName();
  std::string seen;
  FanOut(1, absl::Seconds(1), [](size_t) { return std::string("renamed"); },
         [&](const FanOutItem& item) {
           EXPECT_EQ(item.index, 0u);
           seen = ThreadName();
         });
  EXPECT_EQ(seen, mine);
}

TEST(GroupFanOutTest, OneGroupFailingToParkReleasesEveryOtherAndIsNamed) {
  ClockGuestGroup a(nullptr, "vm-a"), c(nullptr, "vm-c");
  ClockGuestGroup b([] { return absl::AbortedError("vm-b vcpu 0 not parked"); }, "vm-b");
  GuestGroup* groups[] = {&a, &b, &c};
  absl::Status s = ParkAll(groups, absl::Seconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("clock [vm-b]: vm-b vcpu 0 not parked"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("released every VM"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("vm-a")));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("vm-c")));
  for (const ClockGuestGroup* g : {&a, &b, &c}) EXPECT_FALSE(g->parked());
  EXPECT_EQ(a.releases(), 1);
  EXPECT_EQ(c.releases(), 1);
}

}  // namespace
}  // namespace ucode::orchestrator
