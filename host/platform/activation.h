// The late load as a platform performs it: prepared outside any hold, then activated.
// The emulated host runs a stop_machine_nmi-style rendezvous itself (stop_machine.h);
// on Linux the kernel runs it behind sysfs microcode/reload. Either way the result is
// per CPU; the kernel-equivalent verdict over it is host/late_load's Account().
#ifndef UCODE_HOST_PLATFORM_ACTIVATION_H_
#define UCODE_HOST_PLATFORM_ACTIVATION_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ucode::platform {

// Faults for the emulated rendezvous (tests and rehearsals).
struct RendezvousFaults {
  std::set<int> never_arrive;    // these CPUs never join (stuck with interrupts off)
  std::set<int> late_arrival;    // these join only after every other CPU gave up waiting
  std::set<int> primary_hangs;   // these primaries never finish WRMSR 0x79: siblings time out
  std::set<int> offline_silent;  // these offline siblings never answer the NMI kick
};

struct ActivationOptions {
  // Kernel: wait_for_cpus() and wait_for_ctrl() each allow one second.
  absl::Duration arrival_timeout = absl::Seconds(1);
  absl::Duration sibling_timeout = absl::Seconds(1);
  // Kernel: kick_offline_cpus() waits half a second for the offline siblings.
  absl::Duration offline_kick_timeout = absl::Milliseconds(500);
  RendezvousFaults faults;  // emulated host only
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
  std::string detail;  // why, for anything but updated/sibling/offline
  uint32_t revision_after = 0;
  absl::Duration modelled;  // WRMSR 0x79 time on a primary (emulated model)
};

// What the kernel's reload produced (Linux backend).
struct KernelReloadOutcome {
  std::string installed_path;  // the file ucode installed for the kernel
  std::string previous_path;   // the file it replaced, kept for rollback ("" if none)
  // The file the kernel's firmware loader read: the first of that name in its search
  // order (firmware_class.path, /lib/firmware/updates[/RELEASE], /lib/firmware[/RELEASE]).
  std::string kernel_path;
  std::vector<std::string> shadowed;    // same name later in the search order, not read
  std::vector<std::string> kmsg_lines;  // kernel log lines emitted during the reload
  // Wall time of the write to microcode/reload: the kernel's firmware request, its own
  // staging (6.19+), and its stop_machine rendezvous, in that order.
  absl::Duration elapsed;
  // From the write to the kernel's "Staging of patch revision ... succeeded" log line
  // (firmware request + staging), when the kernel staged; its stop_machine came after.
  // Read from the record's timestamp (the kernel's local_clock(), which tracks
  // CLOCK_MONOTONIC closely enough for milliseconds).
  std::optional<absl::Duration> staged_after;
};

inline constexpr char kActivationWindow[] = "activation window";
inline constexpr char kReloadWriteWindow[] =
    "reload write (kernel firmware request, kernel staging, stop_machine)";

// What one activation did.
struct Activation {
  std::vector<CpuResult> cpus;  // every present CPU, in topology order
  // Emulated host: wall time from the moment every CPU had arrived to the moment the last
  // one was done, how long the host was stopped for the activation itself. Linux: the
  // whole write to microcode/reload (window_name says which). The orchestrator subtracts
  // this from the time vCPUs were parked to get its own overhead.
  absl::Duration activation_window;
  const char* window_name = kActivationWindow;
  // Linux: the file installed and its page cache warmed by PrepareActivation (outside
  // any hold), and what the kernel's reload did and logged.
  absl::Duration prepare;
  std::optional<KernelReloadOutcome> reload;
  std::vector<std::string> kernel_log;
  // Longest modelled WRMSR 0x79 time of any primary: the model's critical path (zero on
  // Linux, where the kernel does not tell).
  absl::Duration modelled_critical_path;
  // Linux: the reload write failed (the previous file is back); `cpus` still says what
  // each CPU runs.
  absl::Status reload_status;
};

// An activation made ready by Platform::PrepareActivation(). Destroying it without
// Activate() leaves the host as it was (Linux: the previous firmware file is put back).
class PreparedActivation {
 public:
  virtual ~PreparedActivation() = default;
  // The rendezvous (emulated) or the reload write (Linux), on the caller's thread; returns
  // once every CPU has left it. Once only.
  virtual Activation Activate() = 0;
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_ACTIVATION_H_
