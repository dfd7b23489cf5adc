// ClockGuestGroup: VMs reduced to the two instants a report measures, parked and
// released. Parking and releasing cost nothing, so an operation over it shows exactly
// what ucode itself puts inside the park window (bench_park_linux, linux_park_test); the
// fake group of fan_out_test.
#ifndef UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "host/base/status_macros.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

class ClockGuestGroup final : public GuestGroup {
 public:
  // `on_park`, if set, runs inside Park() (a test looks at the host at that instant); its
  // error refuses the park. `name` is the one VM's.
  explicit ClockGuestGroup(std::function<absl::Status()> on_park = nullptr,
                           std::string name = "vm0")
      : on_park_(std::move(on_park)), name_(std::move(name)) {}

  std::string kind() const override { return "clock"; }
  std::vector<std::string> names() const override { return {name_}; }
  int total_vcpus() const override { return 1; }
  absl::Status Park(absl::Duration) override {
    if (on_park_) RETURN_IF_ERROR(on_park_());
    parked_ = absl::Now();
    return absl::OkStatus();
  }
  GuestViewResult SetRevision(uint32_t, absl::Duration) override {
    return {absl::OkStatus(), {{name_, ViewStatus::kSet, ""}}};
  }
  absl::Status Release(absl::Duration) override {
    if (parked()) held_ = absl::Now() - parked_;
    parked_ = absl::InfinitePast();
    ++releases_;
    return absl::OkStatus();
  }
  GuestViewResult VerifyGuestViews(uint32_t, absl::Duration) override {
    return {absl::OkStatus(), {{name_, ViewStatus::kSet, ""}}};
  }
  std::vector<VmReport> Report() override {
    return {VmReport{.kind = "clock", .name = name_, .vcpus = 1, .time_parked = held_}};
  }
  [[nodiscard]] bool parked() const { return parked_ != absl::InfinitePast(); }
  [[nodiscard]] int releases() const { return releases_; }

 private:
  std::function<absl::Status()> on_park_;
  std::string name_;
  absl::Time parked_ = absl::InfinitePast();
  absl::Duration held_;
  int releases_ = 0;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_CLOCK_GROUP_H_
