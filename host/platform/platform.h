// The host as ucode sees it: CPU topology, MSRs, a 32-bit MMIO window, per-CPU microcode
// identity, and the late load (activation.h). Two implementations: LinuxPlatform (sysfs,
// /dev/cpu/N/msr, /dev/mem) and EmulatedPlatform (the rehearsal host and test default).
//
// Thread safety: every method may be called from any thread concurrently, except where a
// method says otherwise. An MmioWindow is used by one thread at a time.
#ifndef UCODE_HOST_PLATFORM_PLATFORM_H_
#define UCODE_HOST_PLATFORM_PLATFORM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "host/microcode/selection.h"
#include "host/platform/activation.h"

namespace ucode::platform {

// Architectural MSRs (SDM Vol. 4, "Model-Specific Registers").
inline constexpr uint32_t kMsrPlatformId = 0x17;         // IA32_PLATFORM_ID, bits 52:50
inline constexpr uint32_t kMsrUcodeTrigger = 0x79;       // IA32_BIOS_UPDT_TRIG
inline constexpr uint32_t kMsrMcuEnumeration = 0x7B;     // IA32_MCU_ENUMERATION
inline constexpr uint32_t kMsrUcodeRevision = 0x8B;      // IA32_BIOS_SIGN_ID, bits 63:32
inline constexpr uint32_t kMsrArchCapabilities = 0x10A;  // IA32_ARCH_CAPABILITIES
inline constexpr uint32_t kMsrMcuStagingMboxAddr = 0x7A5;  // IA32_MCU_STAGING_MBOX_ADDR

// Bits, as the Linux staging series tests them (arch/x86/kernel/cpu/microcode/intel.c,
// staging_available(): ARCH_CAP_MCU_ENUM then MCU_STAGING).
inline constexpr uint64_t kArchCapMcuEnumeration = 1ull << 16;
inline constexpr uint64_t kMcuEnumerationStaging = 1ull << 4;
inline constexpr int kPlatformIdShift = 50;
inline constexpr int kUcodeRevisionShift = 32;

struct LogicalCpu {
  int id = 0;        // Linux CPU number
  int package = 0;   // physical package id (-1 unknown, e.g. an offline CPU on Linux)
  int core = 0;      // core id within the package
  int thread = 0;    // 0 for the core's primary thread, 1.. for SMT siblings
  bool online = true;
};

struct Topology {
  std::vector<LogicalCpu> cpus;  // ordered by id

  // Online CPUs that are thread 0 of their core: the CPUs that write MSR 0x79 (the kernel's
  // "primary threads", topology_is_primary_thread()).
  [[nodiscard]] std::vector<int> CorePrimaries() const;
  // The first online primary thread of each package, in package order: the CPU that drives
  // that package's staging mailbox (kernel: stage_microcode() picks one CPU per package).
  [[nodiscard]] std::vector<int> PackageLeaders() const;
  [[nodiscard]] int OnlineCount() const;
  // The online primary thread of `cpu`'s core, or -1.
  [[nodiscard]] int PrimaryOf(int cpu) const;
  [[nodiscard]] const LogicalCpu* Find(int cpu) const;
};

// A mapped 32-bit MMIO register window. Move-only owner of its mapping.
class MmioWindow {
 public:
  virtual ~MmioWindow() = default;
  MmioWindow(const MmioWindow&) = delete;
  MmioWindow& operator=(const MmioWindow&) = delete;

  // `offset` is in bytes, 4-aligned and inside the window (our own invariant: callers
  // pass register constants).
  virtual uint32_t Read32(uint32_t offset) = 0;
  virtual void Write32(uint32_t offset, uint32_t value) = 0;

 protected:
  MmioWindow() = default;
};

class Platform {
 public:
  virtual ~Platform() = default;

  [[nodiscard]] virtual std::string name() const = 0;  // "emulated" or "linux"
  virtual absl::StatusOr<Topology> GetTopology() = 0;

  // CPUID.(EAX=7,ECX=0):EDX[29] on `cpu`: IA32_ARCH_CAPABILITIES (MSR 0x10A) exists. The
  // kernel reads that MSR only behind this bit (x86_read_arch_cap_msr()).
  virtual absl::StatusOr<bool> HasArchCapabilities(int cpu) = 0;

  virtual absl::StatusOr<uint64_t> ReadMsr(int cpu, uint32_t msr) = 0;
  virtual absl::Status WriteMsr(int cpu, uint32_t msr, uint64_t value) = 0;
  virtual absl::StatusOr<std::unique_ptr<MmioWindow>> MapMmio(uint64_t phys_addr,
                                                              size_t size) = 0;

  // Signature, platform id and running revision of `cpu` (what the kernel's
  // intel_collect_cpu_info() reports).
  virtual absl::StatusOr<microcode::CpuIdentity> Identity(int cpu) = 0;

  // --- The late load. ---

  // Everything activating `update` (revision `revision`, one validated image) on every
  // CPU of `topology` needs, made ready before the VMM side holds anything: on the
  // emulated host the stopper threads and the stop_machine rendezvous
  // (stop_machine.h); on Linux the file installed under the CPU's own intel-ucode name
  // where the kernel reads it first, page cache warmed. Fails with the host untouched:
  // CPUs not loadable (the kernel's -EBUSY), or a kernel without late loading
  // (CONFIG_MICROCODE_LATE_LOADING=n) or a file that cannot go where it would be read.
  virtual absl::StatusOr<std::unique_ptr<PreparedActivation>> PrepareActivation(
      const Topology& topology, absl::Span<const uint8_t> update, uint32_t revision,
      const ActivationOptions& options) = 0;

  // Why an update on this platform leaves staging to the kernel ("" when ucode stages
  // from user space: the emulated host). Linux: 6.19+ stages inside the reload write and
  // aborts any mailbox transfer first; older kernels load unstaged.
  [[nodiscard]] virtual std::string StagingLeftToKernel() const { return ""; }

  // The running kernel's release ("6.19.0-1-amd64") when a kernel loads the microcode
  // (Linux), "" when ucode does (emulated host).
  [[nodiscard]] virtual std::string KernelRelease() { return ""; }

  // The activation time model's parameters, for reports ("" when the timing is real).
  [[nodiscard]] virtual std::string ActivationModel() const { return ""; }

  // How long activating `update` is expected to hold the host (the longest any core
  // spends in it): the emulated model's figure, or on Linux the longest reload this
  // process measured. nullopt when nothing predicts it. The orchestrator refuses to park
  // VMs for longer than their own dead-man deadline would hold them.
  [[nodiscard]] virtual std::optional<absl::Duration> PredictActivation(
      absl::Span<const uint8_t> update) {
    (void)update;
    return std::nullopt;
  }
};

// True if a kernel release string ("6.19.0-1-amd64") is `major`.`minor` or later.
bool KernelReleaseAtLeast(absl::string_view release, int major, int minor);

// The running revision of `cpu` (Identity().current_revision).
absl::StatusOr<uint32_t> ReadRevision(Platform& platform, int cpu);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_PLATFORM_H_
