// One KVM virtual machine: the /dev/kvm and VM fds, guest memory, the in-kernel irqchip
// and the vCPU fds with their kvm_run mappings, set up for a flat 64-bit guest program.
// Owned by ucode-vmm's main thread; each VcpuFd is then handed to the vCPU thread that
// runs it (KVM API document, 4.8 KVM_RUN: the vCPU ioctls belong to one thread).
#ifndef UCODE_VMM_KVM_KVM_VM_H_
#define UCODE_VMM_KVM_KVM_VM_H_

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "host/base/unique_fd.h"

namespace ucode::vmm {

// Move-only owner of an mmap()ed region.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  Mapping(Mapping&& o) noexcept : addr_(o.addr_), size_(o.size_) { o.addr_ = nullptr; }
  Mapping& operator=(Mapping&& o) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

  [[nodiscard]] uint8_t* data() const { return static_cast<uint8_t*>(addr_); }
  [[nodiscard]] size_t size() const { return size_; }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

// A vCPU's fd and its kvm_run page (KVM API document, 4.8 KVM_RUN / 5. kvm_run).
struct VcpuFd {
  int index = 0;
  UniqueFd fd;
  Mapping run_mapping;
  [[nodiscard]] kvm_run* run() const {
    return reinterpret_cast<kvm_run*>(run_mapping.data());
  }
};

class KvmVm {
 public:
  // Opens /dev/kvm, checks the capabilities ucode needs (each missing one is named),
  // creates the VM with `memory_bytes` of guest RAM at GPA 0 and the in-kernel irqchip.
  static absl::StatusOr<KvmVm> Create(size_t memory_bytes);

  KvmVm(KvmVm&&) = default;
  KvmVm& operator=(KvmVm&&) = default;

  // Copies the flat program to GUEST_CODE_BASE and writes the long-mode page tables and
  // GDT (identity map of the first 1 GiB with 2 MiB pages).
  absl::Status LoadProgram(absl::Span<const uint8_t> code);

  // Creates vCPU `index` in 64-bit mode at the program entry, RDI = its guest record,
  // RSI = index, MSR 0x8B = `ucode_rev_msr` (the full MSR value).
  absl::StatusOr<VcpuFd> CreateVcpu(int index, uint64_t ucode_rev_msr);

  [[nodiscard]] uint8_t* memory() const { return memory_.data(); }
  // Guest TSC frequency (KVM_GET_TSC_KHZ on a vCPU), 0 if unknown.
  [[nodiscard]] uint32_t tsc_khz() const { return tsc_khz_; }

 private:
  KvmVm() = default;

  UniqueFd kvm_;
  UniqueFd vm_;
  Mapping memory_;
  int run_size_ = 0;
  uint32_t tsc_khz_ = 0;
};

// MSR helpers on a vCPU fd (KVM API document 4.18/4.19 KVM_GET_MSRS/KVM_SET_MSRS: the
// return value is the number of MSRs processed, a short count is an error).
absl::StatusOr<uint64_t> GetMsr(int vcpu_fd, uint32_t index);
absl::Status SetMsr(int vcpu_fd, uint32_t index, uint64_t value);

inline constexpr uint32_t kMsrIa32UcodeRev = 0x8B;  // IA32_BIOS_SIGN_ID, SDM Vol. 4

}  // namespace ucode::vmm

#endif  // UCODE_VMM_KVM_KVM_VM_H_
