// Host late load: activate an update on every CPU of the host, stop_machine_nmi-style.
// On a platform with a direct trigger (the emulated host) ucode runs the rendezvous itself,
// one thread per logical CPU (stop_machine.h); on Linux the kernel does it behind
// sysfs microcode/reload and we collect its verdict.
//
// The accounting mirrors the kernel's load_late_stop_cpus() (arch/x86/kernel/cpu/
// microcode/core.c): every CPU ends as updated (primary that applied), sibling (re-read the
// new revision), already current, timed out, failed, or offline (an offline SMT sibling
// brought in by NMI);
// results are accumulated, never overwritten.
#ifndef UCODE_HOST_LATE_LOAD_LATE_LOAD_H_
#define UCODE_HOST_LATE_LOAD_LATE_LOAD_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "host/platform/platform.h"

namespace ucode::late_load {

// Where the VMM side holds every vCPU. before_activation runs on the caller's thread just
// before the rendezvous (or the reload write); if it fails, the load is abandoned with the
// host untouched and after_activation is not called. after_activation runs on the caller's
// thread once every CPU has left the rendezvous (whatever the outcome), before RunLateLoad
// returns. Whatever before_activation holds stays held when RunLateLoad returns: the
// orchestrator sets the guests' revision and releases them after it returns
// (vmm/orchestrator/update_operation.cc), and sets no after_activation; the tests use it
// to look at the host inside the hold.
struct LateLoadHooks {
  std::function<absl::Status()> before_activation;
  std::function<void()> after_activation;
};

// Faults for the emulated rendezvous (tests and rehearsals).
struct RendezvousFaults {
  std::set<int> never_arrive;    // these CPUs never join (stuck with interrupts off)
  std::set<int> late_arrival;    // these join only after every other CPU gave up waiting
  std::set<int> primary_hangs;   // these primaries never finish WRMSR 0x79: siblings time out
  std::set<int> offline_silent;  // these offline siblings never answer the NMI kick
};

struct LateLoadOptions {
  // Kernel: wait_for_cpus() and wait_for_ctrl() each allow one second.
  absl::Duration arrival_timeout = absl::Seconds(1);
  absl::Duration sibling_timeout = absl::Seconds(1);
  // Kernel: kick_offline_cpus() waits half a second for the offline siblings.
  absl::Duration offline_kick_timeout = absl::Milliseconds(500);
  RendezvousFaults faults;
};

// kAlreadyCurrent: a primary whose core already ran the update's revision or newer; the
// kernel's __apply_microcode() skips WRMSR 0x79 and answers UCODE_OK, which
// load_late_stop_cpus() counts with the siblings (so a retry after a partial load
// completes).
enum class CpuOutcome { kUpdated, kSibling, kAlreadyCurrent, kTimedOut, kFailed, kOffline };
const char* CpuOutcomeName(CpuOutcome outcome);

struct CpuResult {
  int cpu = 0;
  CpuOutcome outcome = CpuOutcome::kFailed;
  std::string detail;            // why, for anything but updated/sibling/offline
  uint32_t revision_after = 0;
  absl::Duration modelled;       // WRMSR 0x79 time on a primary (emulated model)
};

inline constexpr char kActivationWindow[] = "activation window";
inline constexpr char kReloadWriteWindow[] =
    "reload write (kernel firmware request, kernel staging, stop_machine)";

struct LateLoadResult {
  std::vector<CpuResult> cpus;  // every present CPU, by id
  int updated = 0;
  int siblings = 0;
  int timed_out = 0;
  int failed = 0;
  int offline = 0;
  uint32_t old_revision = 0;
  uint32_t new_revision = 0;   // the image's revision
  // Emulated host: wall time from the moment every CPU had arrived to the moment the last
  // one was done, how long the host was stopped for the activation itself. Linux: the
  // whole write to microcode/reload (window_name says which). The orchestrator subtracts
  // this from the time vCPUs were parked to get its own overhead.
  absl::Duration activation_window;
  // What activation_window measured, for reports: kActivationWindow, or on Linux
  // kReloadWriteWindow.
  const char* window_name = kActivationWindow;
  // Linux: the file installed and its page cache warmed before before_activation (outside
  // any hold), and what the kernel's reload did.
  absl::Duration prepare;
  std::optional<platform::KernelReloadOutcome> reload;
  // Longest modelled WRMSR 0x79 time of any primary: the model's critical path (zero on
  // Linux, where the kernel does not tell).
  absl::Duration modelled_critical_path;
  std::string model_parameters;        // the activation model, when one applies
  std::vector<std::string> kernel_log; // Linux: the kernel's lines about this reload
  // The kernel-equivalent verdict: OK iff updated + siblings == online CPUs.
  absl::Status status;
  // "updated on 8 primary CPUs with 7 siblings", or the failure in the kernel's words.
  std::string summary;
};

// Runs the late load of `update` (one validated image). Fails without touching the host if
// the CPUs are not in a loadable state (an offline primary thread: the kernel's -EBUSY),
// the kernel cannot take the file (Linux), or before_activation fails; otherwise returns
// the result, whose `status` says whether every CPU took the update. On Linux the file is
// installed (named after the CPU's own signature) and its page cache warmed before
// before_activation, so whatever the hook holds is held only across the reload write.
absl::StatusOr<LateLoadResult> RunLateLoad(platform::Platform& platform,
                                           absl::Span<const uint8_t> update,
                                           const LateLoadHooks& hooks,
                                           const LateLoadOptions& options = {});

// Fills the counts, status and summary from `result.cpus`, as load_late_stop_cpus() does.
void Account(LateLoadResult& result, int online_cpus, int offline_cpus);

}  // namespace ucode::late_load

#endif  // UCODE_HOST_LATE_LOAD_LATE_LOAD_H_
