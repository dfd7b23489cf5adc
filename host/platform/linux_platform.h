// LinuxPlatform: the production host seen through the kernel's interfaces.
//   topology   <root>/sys/devices/system/cpu/{present, cpuN/online, cpuN/topology/*}
//   identity   <root>/proc/cpuinfo (family/model/stepping -> CPUID(1).EAX, flags),
//              cpuN/microcode/processor_flags; the revision from MSR 0x8B where
//              /dev/cpu/N/msr exists (cross-checked with cpuN/microcode/version, the
//              kernel's cached copy), else from that sysfs file
//   MSRs       <root>/dev/cpu/N/msr, pread/pwrite at the MSR index (msr module)
//   MMIO       <root>/dev/mem, mmap of the page holding the window
//   late load  install intel-ucode/FF-MM-SS (the CPU's own signature) where the kernel's
//              firmware loader reads it first (linux_firmware.h), warm it, then write 1 to
//              microcode/reload and collect the kernel's microcode lines from
//              <root>/dev/kmsg (linux_reload.cc).
// Every path takes the root prefix, so tests run against a fake tree; the reload write and
// the CPUID(1) execution are replaceable functions so a responder can play the kernel and
// the CPU (fake_linux_kernel.h).
#ifndef UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_
#define UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "host/platform/platform.h"

namespace ucode::platform {

struct LinuxPlatformOptions {
  std::string root = "/";
  // Writes "1" to `reload_path`; returns 0 or the errno the kernel gave. Default: write(2).
  std::function<int(const std::string& reload_path)> write_reload;
  // Executes CPUID(1) on `cpu`, which makes the CPU load its revision into MSR 0x8B (SDM
  // Vol. 3A §10.11.7). Default: read leaf 1 from <root>/dev/cpu/N/cpuid (cpuid module);
  // without that device it does nothing.
  std::function<absl::Status(int cpu)> cpuid_leaf1;
};

class LinuxPlatform : public Platform {
 public:
  static absl::StatusOr<std::unique_ptr<LinuxPlatform>> Create(LinuxPlatformOptions options);

  [[nodiscard]] std::string name() const override { return "linux"; }
  absl::StatusOr<Topology> GetTopology() override;
  absl::StatusOr<bool> HasArchCapabilities(int cpu) override;
  absl::StatusOr<uint64_t> ReadMsr(int cpu, uint32_t msr) override;
  absl::Status WriteMsr(int cpu, uint32_t msr, uint64_t value) override;
  absl::StatusOr<std::unique_ptr<MmioWindow>> MapMmio(uint64_t phys_addr, size_t size) override;
  absl::StatusOr<microcode::CpuIdentity> Identity(int cpu) override;
  // Installs the file for the kernel's reload (linux_reload.cc); `options` do not apply:
  // the kernel's rendezvous has its own timeouts.
  absl::StatusOr<std::unique_ptr<PreparedActivation>> PrepareActivation(
      const Topology& topology, absl::Span<const uint8_t> update, uint32_t revision,
      const ActivationOptions& options) override;
  [[nodiscard]] std::string StagingLeftToKernel() const override {
    return "staging left to the kernel (Linux 6.19+ stages inside the reload write; older "
           "kernels load unstaged)";
  }
  [[nodiscard]] std::string KernelRelease() override;
  // The longest reload this process measured (the kernel does not predict its own).
  [[nodiscard]] std::optional<absl::Duration> PredictActivation(
      absl::Span<const uint8_t> update) override;
  // Called by each reload with the time its write to `reload` took.
  void NoteReloadTime(absl::Duration elapsed);

  // <root>/<relative>
  [[nodiscard]] std::string Path(const std::string& relative) const;

 private:
  explicit LinuxPlatform(LinuxPlatformOptions options) : options_(std::move(options)) {}
  // `cpu`'s block of /proc/cpuinfo, key -> value.
  absl::StatusOr<std::map<std::string, std::string>> CpuinfoBlock(int cpu) const;
  absl::StatusOr<uint32_t> Signature(int cpu) const;
  // MSR 0x8B bits 63:32 by the SDM's sequence, or nullopt without /dev/cpu/N/msr.
  absl::StatusOr<std::optional<uint32_t>> RevisionFromMsr(int cpu);

  const LinuxPlatformOptions options_;
  absl::Mutex mu_;
  std::optional<absl::Duration> longest_reload_ ABSL_GUARDED_BY(mu_);
};

// The message for an errno from writing microcode/reload (kernel: reload_store() and
// load_late_locked() in arch/x86/kernel/cpu/microcode/core.c).
absl::Status ReloadErrnoStatus(int err);

// Reads a small sysfs/procfs text file, whitespace stripped.
absl::StatusOr<std::string> ReadSysfsText(const std::string& path);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_
