// KVM ioctls whose argument ends in a flexible array, with their C layout.
//
// Debian bookworm's uapi headers declare those arrays with __DECLARE_FLEX_ARRAY, which in
// C++ wraps the array beside a 1-byte empty struct: sizeof(kvm_msrs) is 16 instead of 8,
// the entries move to offset 12 or 16, and the ioctl numbers (_IOWR encodes the size)
// no longer match the kernel's. So we spell the C layouts and numbers out here.
#ifndef UCODE_VMM_KVM_KVM_ABI_H_
#define UCODE_VMM_KVM_KVM_ABI_H_

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace ucode::vmm {

// struct kvm_msrs / kvm_cpuid2 without the array: { __u32 n; __u32 pad; }.
struct KvmArrayHeader {
  uint32_t n;
  uint32_t pad;
};

struct KvmMsrsOne {
  KvmArrayHeader header;
  kvm_msr_entry entry;
};
static_assert(offsetof(KvmMsrsOne, entry) == 8);

inline constexpr int kMaxCpuidEntries = 256;
struct KvmCpuid {
  KvmArrayHeader header;
  kvm_cpuid_entry2 entries[kMaxCpuidEntries];
};
static_assert(offsetof(KvmCpuid, entries) == 8);

inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmArrayHeader);
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, KvmArrayHeader);
inline constexpr unsigned long kKvmGetMsrs = _IOWR(KVMIO, 0x88, KvmArrayHeader);
inline constexpr unsigned long kKvmSetMsrs = _IOW(KVMIO, 0x89, KvmArrayHeader);

}  // namespace ucode::vmm

#endif  // UCODE_VMM_KVM_KVM_ABI_H_
