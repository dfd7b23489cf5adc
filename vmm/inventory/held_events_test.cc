#include "vmm/inventory/held_events.h"

#include <vector>

#include "gtest/gtest.h"

namespace ucode::inventory {
namespace {

using orchestrator::Step;

std::vector<Step> Steps(const std::vector<HeldEvents::Event>& events) {
  std::vector<Step> out;
  for (const HeldEvents::Event& e : events) out.push_back(e.step);
  return out;
}

TEST(HeldEventsTest, HeldWindowArrivesWithReleased) {
  std::vector<HeldEvents::Event> got;
  HeldEvents events([&](const HeldEvents::Event& e) { got.push_back(e); });
  events.Emit(Step::kValidated, "v");
  EXPECT_EQ(Steps(got), std::vector<Step>{Step::kValidated});
  events.Emit(Step::kParked, "p");
  events.Emit(Step::kActivated, "a");
  EXPECT_EQ(got.size(), 1u);
  events.Emit(Step::kReleased, "r");
  EXPECT_EQ(Steps(got), (std::vector<Step>{Step::kValidated, Step::kParked, Step::kActivated,
                                           Step::kReleased}));
  EXPECT_EQ(got[2].message, "a");
  EXPECT_LE(got[1].emitted, got[2].emitted);
}

TEST(HeldEventsTest, FlushDeliversAWindowThatNeverReleased) {
  std::vector<HeldEvents::Event> got;
  HeldEvents events([&](const HeldEvents::Event& e) { got.push_back(e); });
  events.Emit(Step::kParked, "p");
  EXPECT_TRUE(got.empty());
  events.Flush();
  EXPECT_EQ(Steps(got), std::vector<Step>{Step::kParked});
}

TEST(HeldEventsTest, WithoutHoldEveryEventGoesAtOnce) {
  std::vector<HeldEvents::Event> got;
  HeldEvents events([&](const HeldEvents::Event& e) { got.push_back(e); }, /*hold=*/false);
  events.Emit(Step::kParked, "p");
  events.Emit(Step::kActivated, "a");
  EXPECT_EQ(Steps(got), (std::vector<Step>{Step::kParked, Step::kActivated}));
}

}  // namespace
}  // namespace ucode::inventory
