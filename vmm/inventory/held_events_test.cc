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
  events.Emit(v1::STEP_VALIDATED, "v");
  EXPECT_EQ(Steps(got), std::vector<Step>{v1::STEP_VALIDATED});
  events.Emit(v1::STEP_PARKED, "p");
  events.Emit(v1::STEP_ACTIVATED, "a");
  EXPECT_EQ(got.size(), 1u);
  events.Emit(v1::STEP_RELEASED, "r");
  EXPECT_EQ(Steps(got), (std::vector<Step>{v1::STEP_VALIDATED, v1::STEP_PARKED, v1::STEP_ACTIVATED,
                                           v1::STEP_RELEASED}));
  EXPECT_EQ(got[2].message, "a");
  EXPECT_LE(got[1].emitted, got[2].emitted);
}

TEST(HeldEventsTest, FlushDeliversAWindowThatNeverReleased) {
  std::vector<HeldEvents::Event> got;
  HeldEvents events([&](const HeldEvents::Event& e) { got.push_back(e); });
  events.Emit(v1::STEP_PARKED, "p");
  EXPECT_TRUE(got.empty());
  events.Flush();
  EXPECT_EQ(Steps(got), std::vector<Step>{v1::STEP_PARKED});
}

TEST(HeldEventsTest, WithoutHoldEveryEventGoesAtOnce) {
  std::vector<HeldEvents::Event> got;
  HeldEvents events([&](const HeldEvents::Event& e) { got.push_back(e); }, /*hold=*/false);
  events.Emit(v1::STEP_PARKED, "p");
  events.Emit(v1::STEP_ACTIVATED, "a");
  EXPECT_EQ(Steps(got), (std::vector<Step>{v1::STEP_PARKED, v1::STEP_ACTIVATED}));
}

}  // namespace
}  // namespace ucode::inventory
