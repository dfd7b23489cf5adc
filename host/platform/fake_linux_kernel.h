// A Linux host's microcode interfaces as a file tree under a root directory, and the
// kernel's side of them, for LinuxPlatform's tests and the Linux park-window benchmark.
//
// The tree: sysfs CPUs (topology, microcode/version, processor_flags, microcode/reload
// unless late loading is disabled), /proc/cpuinfo (with the arch_capabilities flag),
// /proc/sys/kernel/osrelease, firmware_class.path and msr.allow_writes parameters,
// /dev/cpu/N/{msr,cpuid} (a sparse file per CPU holding MSRs 0x8B, 0x10A, 0x7B, 0x7A5 at
// their offsets; no /dev/mem), /dev/kmsg and /lib/firmware.
//
// Reload() plays reload_store() -> load_late_locked() -> load_late_stop_cpus()
// (arch/x86/kernel/cpu/microcode/{core,intel}.c): -EBUSY for an offline primary thread;
// request_firmware("intel-ucode/FF-MM-SS" of the CPU's own signature) searched in the
// firmware loader's order; parse_microcode_blobs() (malformed: -EBADFD; nothing newer,
// or only unsafe images under force_minrev: -ENOENT); on a 6.19+ kernel with a staging
// CPU, staging first; then the stop_machine update of every online CPU, logged in the
// kernel's words. Each phase takes a configurable time per MB (the responder model).
//
// Thread safety: Reload() and CpuidLeaf1() may run concurrently with reads of the tree;
// the setters are for test setup.
#ifndef UCODE_HOST_PLATFORM_FAKE_LINUX_KERNEL_H_
#define UCODE_HOST_PLATFORM_FAKE_LINUX_KERNEL_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "host/platform/linux_platform.h"

namespace ucode::platform {

// How long each phase of the reload write takes, per MB of the firmware file (the
// "responder model"). Defaults: zero, for tests.
struct FakeKernelTiming {
  absl::Duration firmware_per_mb;  // request_firmware() + parse_microcode_blobs()
  // stage_microcode(): the kernel sleeps 1 ms before each STATUS read, one read per 4 KiB
  // page at best, so ~256 ms/MB on real hardware.
  absl::Duration staging_per_mb;
  absl::Duration stop_machine_fixed;   // load_late_stop_cpus(): rendezvous + WRMSR
  absl::Duration stop_machine_per_mb;  // WRMSR 0x79 time that grows with the image
};

struct FakeKernelConfig {
  std::string release = "6.18.0-1-amd64";
  bool late_loading = true;       // CONFIG_MICROCODE_LATE_LOADING: microcode/reload exists
  bool cpu_staging = false;       // MSR 0x10A bit 16 + MSR 0x7B bit 4 (the kernel stages on
                                  // 6.19+ when set)
  bool arch_capabilities = true;  // the arch_capabilities cpuinfo flag, MSR 0x10A present
  bool force_minrev = false;      // the kernel's force_minrev
  std::string firmware_class_path;        // firmware_class.path ("" unset)
  std::string msr_allow_writes = "on";    // msr.allow_writes
  bool msr_device = true;                 // /dev/cpu/N/msr and cpuid exist
  // 1 package x 2 cores x 2 threads: cpu0/cpu2 core 0, cpu1/cpu3 core 1.
  int cores = 2;
  int threads = 2;
  std::set<int> offline;                  // e.g. {3}: an offline SMT sibling
  uint32_t signature = 0x000806f8;        // CPUID(1).EAX of every CPU
  uint32_t platform_id = 7;
  uint32_t revision = 0x2b000000;
  FakeKernelTiming timing;
};

class FakeLinuxKernel {
 public:
  // Builds the tree under `root` (created; must not hold another tree).
  static absl::StatusOr<std::unique_ptr<FakeLinuxKernel>> Create(const std::string& root,
                                                                 const FakeKernelConfig& config);

  // Options for a LinuxPlatform on this tree, with the reload write and CPUID(1) played by
  // this object (which must outlive the platform).
  LinuxPlatformOptions PlatformOptions();

  // The kernel's reload_store(): 0 or the errno.
  int Reload();
  // CPUID(1) on `cpu`: the CPU loads its revision into MSR 0x8B.
  absl::Status CpuidLeaf1(int cpu);

  // The file the last Reload() read ("" if none), and the revision it loaded (0 if none).
  std::string last_firmware_path() const;
  uint32_t last_loaded_revision() const;
  // The stop_machine part of the last successful reload: the time every CPU (and so every
  // running vCPU) was held by the kernel.
  absl::Duration last_stop_machine() const;
  // MSR 0x8B as each CPUID(1) found it before loading the revision (to check the SDM's
  // write-0-first order).
  std::vector<uint64_t> msr_8b_before_cpuid() const;

  uint32_t revision(int cpu) const;
  // Makes sysfs microcode/version disagree with the CPU (a stale kernel copy).
  void SetSysfsVersion(int cpu, uint32_t revision);
  // Writes `bytes` as <root>/<path> (directories created).
  absl::Status WriteFile(const std::string& path, absl::Span<const uint8_t> bytes);

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] int cpu_count() const { return config_.cores * config_.threads; }

 private:
  FakeKernelConfig config_;
  std::string root_;  // ends with '/'

  FakeLinuxKernel(std::string root, const FakeKernelConfig& config);
  absl::Status BuildTree();
  bool KernelStages() const;
  void SetRevision(int cpu, uint32_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Log(const std::string& line);

  mutable absl::Mutex mu_;
  std::vector<uint32_t> revision_ ABSL_GUARDED_BY(mu_);
  std::string last_firmware_path_ ABSL_GUARDED_BY(mu_);
  uint32_t last_loaded_revision_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration last_stop_machine_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> msr_8b_before_cpuid_ ABSL_GUARDED_BY(mu_);
  int kmsg_seq_ ABSL_GUARDED_BY(mu_) = 100;
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_FAKE_LINUX_KERNEL_H_
