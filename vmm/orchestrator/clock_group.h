// ClockGuestGroup: VMs reduced to the two instants a report measures, parked and
// released. Parking and releasing cost nothing, so an operation over it shows exactly
// what ucode itself puts inside the park window (bench_park_linux, linux_park_test).
#ifndef UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

class ClockGuestGroup final : public GuestGroup {
 public:
  // `on_park`, if set, runs inside Park() (a test looks at the host at that instant).
  explicit ClockGuestGroup(std::function<void()> on_park = nullptr)
      : on_park_(std::move(on_park)) {}

  std::string kind() const override { return "clock"; }
  std::vector<std::string> names() const override { return {"vm0"}; }
  int total_vcpus() const override { return 1; }
  absl::Status Park(absl::Duration) override {
    if (on_park_) on_park_();
    parked_ = absl::Now();
    return absl::OkStatus();
  }
  GuestViewResult SetRevision(uint32_t, absl::Duration) override {
    return {absl::OkStatus(), {{"vm0", ViewStatus::kSet, ""}}};
  }
  absl::Status Release(absl::Duration) override {
    if (parked_ != absl::InfinitePast()) held_ = absl::Now() - parked_;
    parked_ = absl::InfinitePast();
    return absl::OkStatus();
  }
  GuestViewResult VerifyGuestViews(uint32_t, absl::Duration) override {
    return {absl::OkStatus(), {{"vm0", ViewStatus::kSet, ""}}};
  }
  std::vector<VmReport> Report() override {
    return {VmReport{.kind = "clock", .name = "vm0", .vcpus = 1, .time_parked = held_}};
  }

 private:
  std::function<void()> on_park_;
  absl::Time parked_ = absl::InfinitePast();
  absl::Duration held_;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_
