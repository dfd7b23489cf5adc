// LinuxPlatform: the production host seen through the kernel's interfaces.
//   topology   <root>/sys/devices/system/cpu/{present, cpuN/online, cpuN/topology/*}
//   identity   <root>/proc/cpuinfo (family/model/stepping -> CPUID(1).EAX),
//              cpuN/microcode/{version, processor_flags}
//   MSRs       <root>/dev/cpu/N/msr, pread/pwrite at the MSR index (msr module)
//   MMIO       <root>/dev/mem, mmap of the page holding the window
//   late load  install <root>/lib/firmware/intel-ucode/FF-MM-SS (atomic rename, previous
//              file kept as FF-MM-SS.ucode-prev), write 1 to microcode/reload, collect the
//              kernel's microcode lines from <root>/dev/kmsg.
// Every path takes the root prefix, so tests run against a fake tree; the reload write is
// a replaceable function so a test responder can play the kernel.
#ifndef UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_
#define UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "host/platform/platform.h"

namespace ucode::platform {

struct LinuxPlatformOptions {
  std::string root = "/";
  // Writes "1" to `reload_path`; returns 0 or the errno the kernel gave. Default: write(2).
  std::function<int(const std::string& reload_path)> write_reload;
};

class LinuxPlatform : public Platform {
 public:
  static absl::StatusOr<std::unique_ptr<LinuxPlatform>> Create(LinuxPlatformOptions options);

  [[nodiscard]] std::string name() const override { return "linux"; }
  absl::StatusOr<Topology> GetTopology() override;
  absl::StatusOr<uint64_t> ReadMsr(int cpu, uint32_t msr) override;
  absl::Status WriteMsr(int cpu, uint32_t msr, uint64_t value) override;
  absl::StatusOr<std::unique_ptr<MmioWindow>> MapMmio(uint64_t phys_addr, size_t size) override;
  absl::StatusOr<microcode::CpuIdentity> Identity(int cpu) override;
  [[nodiscard]] bool HasDirectTrigger() const override { return false; }
  absl::StatusOr<KernelReloadOutcome> KernelReload(absl::Span<const uint8_t> update,
                                                   uint32_t signature) override;
  // The longest reload this process measured (the kernel does not predict its own).
  [[nodiscard]] std::optional<absl::Duration> PredictActivation(
      absl::Span<const uint8_t> update) override;

  // <root>/<relative>
  [[nodiscard]] std::string Path(const std::string& relative) const;

 private:
  explicit LinuxPlatform(LinuxPlatformOptions options) : options_(std::move(options)) {}
  absl::StatusOr<uint32_t> Signature(int cpu) const;

  const LinuxPlatformOptions options_;
  absl::Mutex mu_;
  std::optional<absl::Duration> longest_reload_ ABSL_GUARDED_BY(mu_);
};

// The message for an errno from writing microcode/reload (kernel: reload_store() and
// load_late_locked() in arch/x86/kernel/cpu/microcode/core.c).
absl::Status ReloadErrnoStatus(int err);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_LINUX_PLATFORM_H_
