// QmpGuestGroup: QEMU processes started without libvirt, driven over their QMP sockets
// (vmm/qmp), as a GuestGroup. Park = `stop` on every VM at once, each acknowledged by its
// STOP event; Release = `cont` and RESUME. All or nothing like every group: if any VM
// fails to stop, the ones this group stopped are continued. A VM already paused by
// someone else is left paused and reported so. QEMU keeps the microcode revision it
// started the vCPUs with: every VM's guest view is "stale until restart". No agents.
//
// Threading: the orchestrator's one-caller-at-a-time pattern (guest_group.h); Park and
// Release use one thread per VM, each driving only its own QmpClient.
#ifndef UCODE_VMM_ORCHESTRATOR_QMP_GROUP_H_
#define UCODE_VMM_ORCHESTRATOR_QMP_GROUP_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/orchestrator/guest_group.h"
#include "vmm/qmp/qmp_client.h"

namespace ucode::orchestrator {

struct QmpVmSpec {
  std::string name;
  std::string socket_path;  // QEMU's -qmp unix:PATH,server=on,wait=off
};

class QmpGuestGroup final : public GuestGroup {
 public:
  // Connects to every VM (greeting + qmp_capabilities) and counts its vCPUs
  // (query-cpus-fast), all within `timeout` per VM.
  static absl::StatusOr<std::unique_ptr<QmpGuestGroup>> Create(std::vector<QmpVmSpec> specs,
                                                               absl::Duration timeout);

  QmpGuestGroup(const QmpGuestGroup&) = delete;
  QmpGuestGroup& operator=(const QmpGuestGroup&) = delete;

  [[nodiscard]] std::string kind() const override { return "qmp"; }
  [[nodiscard]] std::vector<std::string> names() const override;
  [[nodiscard]] int total_vcpus() const override;

  [[nodiscard]] absl::Status Park(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult SetRevision(uint32_t revision, absl::Duration deadline) override;
  [[nodiscard]] absl::Status Release(absl::Duration deadline) override;
  [[nodiscard]] GuestViewResult VerifyGuestViews(uint32_t revision,
                                                 absl::Duration timeout) override;
  [[nodiscard]] std::vector<VmReport> Report() override;

 private:
  struct Vm {
    QmpVmSpec spec;
    std::unique_ptr<qmp::QmpClient> client;
    int vcpus = 0;
    bool parked_by_us = false;
    bool paused_by_other = false;
    absl::Status last;  // the last step's outcome for this VM
    absl::Time park_start, parked_at, released_at;
    VmViewOutcome view;
  };

  QmpGuestGroup() = default;

  static void StopOne(Vm& vm, absl::Time deadline);
  static void ContOne(Vm& vm, absl::Time deadline);

  // Runs fn on every VM selected by `pick`, one thread each; returns "name: why" failures.
  std::vector<std::string> ForEach(bool (*pick)(const Vm&), void (*fn)(Vm&, absl::Time),
                                   absl::Duration deadline);

  std::vector<Vm> vms_;
};

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_QMP_GROUP_H_
