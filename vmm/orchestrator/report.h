// The report of one update operation: what the orchestrator fills in as it goes, the one
// conversion to ucode.v1.UpdateReport (proto/ucode/v1/report.proto: what every --json and
// ucoded's API carry), and the one human-readable rendering of that message. No I/O.
#ifndef UCODE_VMM_ORCHESTRATOR_REPORT_H_
#define UCODE_VMM_ORCHESTRATOR_REPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/late_load/late_load.h"
#include "host/staging/staging_driver.h"
#include "proto/ucode/v1/report.pb.h"
#include "vmm/orchestrator/guest_group.h"

namespace ucode::orchestrator {

// One enum each for the steps and the modes: ucode.v1's (proto/ucode/v1/report.proto),
// which the daemon's events and every report carry as they are.
namespace v1 = ::ucode::v1;
using Step = v1::Step;
absl::string_view StepName(Step step);  // "VALIDATED", ...

// UPDATE_MODE_STRICT: vCPUs held across the host activation; UPDATE_MODE_FAST: host
// activation first, then a brief rendezvous for the guest view only.
using UpdateMode = v1::UpdateMode;
const char* UpdateModeName(UpdateMode mode);

struct UpdateReport {
  std::string operation;
  UpdateMode mode = v1::UPDATE_MODE_STRICT;
  absl::Status status;                 // the operation's verdict
  Step last_step = v1::STEP_UNSPECIFIED; // the last step completed
  bool host_touched = false;           // the late load ran (false: the host is as it was)
  // False when the guest views were set only after the VMs had run again (a dead-man
  // released them mid-activation): the guests ran on the new revision with the old view.
  bool views_atomic = true;
  std::vector<std::string> notes;      // what the operator should know ("loaded unstaged")

  // Image and selection.
  std::string plan;  // HostUpdatePlan::Describe()
  uint32_t signature = 0;
  uint32_t platform_id = 0;
  uint32_t old_revision = 0;
  uint32_t new_revision = 0;
  std::string image_date;
  size_t image_bytes = 0;

  std::optional<staging::StagingReport> staging;  // absent: not staged (see notes)
  std::optional<late_load::HostLoadReport> host;  // absent: the host was not loaded

  // The rendezvous, measured by the orchestrator across all groups.
  absl::Duration park_all;       // park fan-out -> every group parked
  // The host late-load call (strict: from every VM parked to its return): the activation
  // window plus the host's own arrival and accounting.
  absl::Duration host_call;
  // SetRevision fan-out. ucode-vmm hands the view to each vCPU with the release, so for
  // it this is only the hand-over; the write and read-back are inside release_all.
  absl::Duration set_views;
  // Release fan-out -> every group released (ucode-vmm: each vCPU wrote and read back
  // MSR 0x8B on its way back into the guest).
  absl::Duration release_all;
  absl::Duration held;           // longest time_parked of any VM
  // Strict: held minus the host activation window; fast: held (no activation inside).
  absl::Duration overhead;
  std::vector<VmReport> vms;
  std::vector<AgentReply> agents_prepare;
  std::vector<AgentReply> agents_complete;
  absl::Duration total;  // wall time of the whole operation

  [[nodiscard]] int total_vcpus() const;
};

// The typed report; print it with proto/json.h.
ucode::v1::UpdateReport ToProto(const UpdateReport& report);

// The report as an aligned, human-readable table (several lines, ends with '\n').
std::string ReportText(const ucode::v1::UpdateReport& report);

}  // namespace ucode::orchestrator

#endif  // UCODE_VMM_ORCHESTRATOR_REPORT_H_
