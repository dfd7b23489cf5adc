// Host late load: activate an update on every CPU of the host, stop_machine_nmi-style, in
// two phases. PrepareLateLoad() does every check and everything expensive (the platform's
// PrepareActivation: the emulated host's stopper threads and rendezvous, or on Linux the
// installed, page-cached firmware file); PreparedLateLoad::Activate() only runs the
// rendezvous (or the reload write) and accounts for it. The caller holds the VMs, if it
// does, between the two (vmm/orchestrator/update_operation.cc).
//
// The accounting mirrors the kernel's load_late_stop_cpus() (arch/x86/kernel/cpu/
// microcode/core.c): every CPU ends as updated (primary that applied), sibling (re-read the
// new revision), already current, timed out, failed, or offline (an offline SMT sibling
// brought in by NMI); results are accumulated, never overwritten.
#ifndef UCODE_HOST_LATE_LOAD_LATE_LOAD_H_
#define UCODE_HOST_LATE_LOAD_LATE_LOAD_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/selection.h"
#include "host/platform/platform.h"

namespace ucode::late_load {

// The per-CPU outcome is the platform's (host/platform/activation.h).
using platform::CpuOutcome;
using platform::CpuOutcomeName;
using platform::CpuResult;

// The platform's activation (per CPU, its window), accounted for as the kernel does.
struct LateLoadResult : platform::Activation {
  int updated = 0;
  int siblings = 0;
  int timed_out = 0;
  int failed = 0;
  int offline = 0;
  uint32_t old_revision = 0;
  uint32_t new_revision = 0;     // the image's revision
  std::string model_parameters;  // the activation model, when one applies
  // The kernel-equivalent verdict: OK iff updated + siblings == online CPUs.
  absl::Status status;
  // "updated on 8 primary CPUs with 7 siblings", or the failure in the kernel's words.
  std::string summary;
};

// A late load with every check done and everything expensive ready (PrepareLateLoad):
// only the rendezvous, or the reload write, is left. Move-only. Dropping it without
// Activate() leaves the host untouched (Linux: the previous firmware file is put back).
class PreparedLateLoad {
 public:
  PreparedLateLoad(PreparedLateLoad&&) = default;
  PreparedLateLoad& operator=(PreparedLateLoad&&) = default;

  [[nodiscard]] uint32_t old_revision() const { return result_.old_revision; }

  // Activates on every CPU (returns once every CPU has left the rendezvous) and accounts
  // for it as the kernel does; the result's `status` says whether every CPU took the
  // update. Once only.
  [[nodiscard]] LateLoadResult Activate();

 private:
  friend absl::StatusOr<PreparedLateLoad> PrepareLateLoad(platform::Platform&,
                                                          absl::Span<const uint8_t>,
                                                          const platform::ActivationOptions&);
  PreparedLateLoad() = default;

  platform::Topology topology_;
  LateLoadResult result_;  // revisions and model now; Activate() fills in the rest
  std::unique_ptr<platform::PreparedActivation> activation_;
};

// Parses `update` (one validated image; it must outlive the result), reads the topology
// and the running revision, and has the platform prepare the activation
// (Platform::PrepareActivation). Fails with the host untouched: the CPUs are not in a
// loadable state (an offline primary thread: the kernel's -EBUSY), or the kernel cannot
// take the file (Linux). Call it before anything is held: whatever is held between it and
// Activate() is held only across the activation.
absl::StatusOr<PreparedLateLoad> PrepareLateLoad(platform::Platform& platform,
                                                 absl::Span<const uint8_t> update,
                                                 const platform::ActivationOptions& options = {});

// The rest of the host half, as the orchestrator's steps use it around the load
// (vmm/orchestrator/update_operation.cc): the plan, the host's identity, verification.

// A selected image and the bytes it views. Move-only: `image` points into `file`.
struct HostUpdatePlan {
  HostUpdatePlan() = default;
  HostUpdatePlan(HostUpdatePlan&&) = default;
  HostUpdatePlan& operator=(HostUpdatePlan&&) = default;
  HostUpdatePlan(const HostUpdatePlan&) = delete;
  HostUpdatePlan& operator=(const HostUpdatePlan&) = delete;

  std::unique_ptr<std::vector<uint8_t>> file;  // the whole file or bundle
  microcode::MicrocodeImage image;             // the selected member
  microcode::CpuIdentity cpu;                  // the host's CPUs (all must agree)
  std::vector<microcode::Candidate> candidates;

  // The selected image's exact bytes.
  [[nodiscard]] absl::Span<const uint8_t> update() const { return image.bytes; }
  // "06-8f-08 rev 0x2b000000 -> 0x2b000639 (2025-07-03), 1.2 MiB"
  [[nodiscard]] std::string Describe() const;
};

// Parses every image in `file`, reads every online CPU's identity (they must share
// signature and platform id), and selects the image the kernel would. Refuses, with each
// candidate's reason, when nothing fits or nothing is newer.
absl::StatusOr<HostUpdatePlan> PlanHostUpdate(platform::Platform& platform,
                                              std::vector<uint8_t> file,
                                              microcode::MinRevPolicy policy);

// Every online CPU's identity; they must share signature and platform id. The revision is
// the lowest any CPU runs (judge against the oldest CPU).
absl::StatusOr<microcode::CpuIdentity> HostIdentity(platform::Platform& platform);

// True when the host already runs the newest image in `file` that fits it (nothing in
// the file is newer than what every CPU runs): the update is done on the host, only guest
// views may lag.
absl::StatusOr<bool> HostRunsNewestImage(platform::Platform& platform,
                                         absl::Span<const uint8_t> file);

// Every online CPU must report `revision`; the error lists the ones that do not.
absl::Status VerifyHostRevision(platform::Platform& platform, uint32_t revision);

// The host's part of an update report.
struct HostLoadReport {
  LateLoadResult load;
  absl::Status verify;  // VerifyHostRevision after the load
};

}  // namespace ucode::late_load

#endif  // UCODE_HOST_LATE_LOAD_LATE_LOAD_H_
