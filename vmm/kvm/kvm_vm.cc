#include "vmm/kvm/kvm_vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"
#include "vmm/guest/guest_record.h"
#include "vmm/kvm/kvm_abi.h"

namespace ucode::vmm {
namespace {

// Guest-physical layout below the program (see guest_record.h for code and records).
constexpr uint64_t kGdtAddr = 0x500;
constexpr uint64_t kPml4Addr = 0x1000;
constexpr uint64_t kPdptAddr = 0x2000;
constexpr uint64_t kPdAddr = 0x3000;
// Intel VMX needs three pages for the real-mode TSS outside guest RAM (KVM API document,
// 4.36 KVM_SET_TSS_ADDR); the conventional spot just below the 4 GiB BIOS area.
constexpr uint64_t kTssAddr = 0xfffbd000;

constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Et = 1ull << 4, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;
constexpr uint64_t kPtePresent = 1, kPteWrite = 2, kPtePageSize = 1ull << 7;

template <typename T>
absl::StatusOr<int> Ioctl(int fd, unsigned long req, T arg, absl::string_view what) {
  int r;
  do {
    r = ioctl(fd, req, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return ErrnoStatus(errno, what);
  return r;
}

// A flat 4 GiB segment: 64-bit code (selector 0x08, execute/read; SDM Vol. 3A 3.4.5: L=1
// requires D=0) or data (selector 0x10, read/write), both accessed.
kvm_segment FlatSegment(bool code) {
  kvm_segment s{};
  s.limit = 0xffffffff;
  s.selector = code ? 0x08 : 0x10;
  s.type = code ? 11 : 3;
  s.present = 1;
  s.s = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;
  s.g = 1;
  return s;
}

}  // namespace

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (addr_ != nullptr) munmap(addr_, size_);
    addr_ = o.addr_;
    size_ = o.size_;
    o.addr_ = nullptr;
  }
  return *this;
}

Mapping::~Mapping() {
  if (addr_ != nullptr) munmap(addr_, size_);
}

absl::StatusOr<KvmVm> KvmVm::Create(size_t memory_bytes) {
  if (memory_bytes < 2 * 1024 * 1024 || memory_bytes % 4096 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest memory must be >= 2 MiB and page aligned, got ", memory_bytes));
  }
  KvmVm vm;
  vm.kvm_ = UniqueFd(open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (!vm.kvm_) return ErrnoStatus(errno, "open /dev/kvm");
  ASSIGN_OR_RETURN(int api, Ioctl(vm.kvm_.get(), KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION"));
  if (api != KVM_API_VERSION) {
    return absl::FailedPreconditionError(
        absl::StrCat("KVM_GET_API_VERSION returned ", api, ", want ", KVM_API_VERSION));
  }
  // KVM_CAP_IMMEDIATE_EXIT: parking without a race against KVM_RUN entry (KVM API
  // document 5, kvm_run::immediate_exit). KVM_CAP_IRQCHIP: HLT blocks in the kernel.
  // KVM_CAP_GET_TSC_KHZ: converting guest TSC gaps to time.
  struct Cap {
    int id;
    const char* name;
  };
  std::vector<std::string> missing;
  for (Cap c : {Cap{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
                Cap{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
                Cap{KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ"},
                Cap{KVM_CAP_KVMCLOCK_CTRL, "KVM_CAP_KVMCLOCK_CTRL"}}) {
    if (ioctl(vm.kvm_.get(), KVM_CHECK_EXTENSION, c.id) <= 0) missing.push_back(c.name);
  }
  if (!missing.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("KVM lacks ", absl::StrJoin(missing, ", ")));
  }
  ASSIGN_OR_RETURN(int vm_fd, Ioctl(vm.kvm_.get(), KVM_CREATE_VM, 0, "KVM_CREATE_VM"));
  vm.vm_ = UniqueFd(vm_fd);
  ASSIGN_OR_RETURN(vm.run_size_, Ioctl(vm.kvm_.get(), KVM_GET_VCPU_MMAP_SIZE, 0,
                                       "KVM_GET_VCPU_MMAP_SIZE"));
  RETURN_IF_ERROR(
      Ioctl(vm.vm_.get(), KVM_SET_TSS_ADDR, kTssAddr, "KVM_SET_TSS_ADDR").status());
  RETURN_IF_ERROR(Ioctl(vm.vm_.get(), KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP").status());

  void* mem = mmap(nullptr, memory_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) return ErrnoStatus(errno, "mmap guest memory");
  vm.memory_ = Mapping(mem, memory_bytes);
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = memory_bytes;
  region.userspace_addr = reinterpret_cast<uint64_t>(mem);
  RETURN_IF_ERROR(Ioctl(vm.vm_.get(), KVM_SET_USER_MEMORY_REGION, &region,
                        "KVM_SET_USER_MEMORY_REGION")
                      .status());
  return vm;
}

absl::Status KvmVm::LoadProgram(absl::Span<const uint8_t> code) {
  if (GUEST_CODE_BASE + code.size() > GUEST_RECORD_BASE) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest program of ", code.size(), " bytes overlaps the records"));
  }
  uint8_t* m = memory_.data();
  std::memcpy(m + GUEST_CODE_BASE, code.data(), code.size());
  // Flat GDT: null, 64-bit code (0x08), data (0x10). SDM Vol. 3A 3.4.5.
  uint64_t gdt[3] = {0, 0x00af9b000000ffffull, 0x00cf93000000ffffull};
  std::memcpy(m + kGdtAddr, gdt, sizeof(gdt));
  // 4-level paging, identity map of 1 GiB with 2 MiB pages (SDM Vol. 3A 4.5).
  uint64_t* pml4 = reinterpret_cast<uint64_t*>(m + kPml4Addr);
  uint64_t* pdpt = reinterpret_cast<uint64_t*>(m + kPdptAddr);
  uint64_t* pd = reinterpret_cast<uint64_t*>(m + kPdAddr);
  pml4[0] = kPdptAddr | kPtePresent | kPteWrite;
  pdpt[0] = kPdAddr | kPtePresent | kPteWrite;
  for (uint64_t i = 0; i < 512; ++i) {
    pd[i] = (i << 21) | kPtePresent | kPteWrite | kPtePageSize;
  }
  return absl::OkStatus();
}

absl::StatusOr<VcpuFd> KvmVm::CreateVcpu(int index, uint64_t ucode_rev_msr) {
  uint64_t record = GUEST_RECORD_BASE + uint64_t(index) * GUEST_RECORD_SIZE;
  if (record + GUEST_RECORD_SIZE > memory_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("vcpu ", index, ": record at 0x",
                                                   absl::Hex(record), " beyond memory"));
  }
  VcpuFd v;
  v.index = index;
  ASSIGN_OR_RETURN(int fd, Ioctl(vm_.get(), KVM_CREATE_VCPU, index,
                                 absl::StrCat("KVM_CREATE_VCPU ", index)));
  v.fd = UniqueFd(fd);
  void* run = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) return ErrnoStatus(errno, absl::StrCat("mmap kvm_run ", index));
  v.run_mapping = Mapping(run, run_size_);

  // CPUID as KVM supports it, so the guest may execute CPUID without faulting.
  auto cpuid = std::make_unique<KvmCpuid>();
  cpuid->header.n = kMaxCpuidEntries;
  RETURN_IF_ERROR(Ioctl(kvm_.get(), kKvmGetSupportedCpuid, cpuid.get(),
                        "KVM_GET_SUPPORTED_CPUID")
                      .status());
  RETURN_IF_ERROR(Ioctl(fd, kKvmSetCpuid2, cpuid.get(), "KVM_SET_CPUID2").status());

  kvm_sregs sregs;
  RETURN_IF_ERROR(Ioctl(fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS").status());
  sregs.cs = FlatSegment(/*code=*/true);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = FlatSegment(/*code=*/false);
  sregs.gdt.base = kGdtAddr;
  sregs.gdt.limit = 3 * 8 - 1;
  sregs.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
  sregs.cr3 = kPml4Addr;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
  RETURN_IF_ERROR(Ioctl(fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS").status());

  kvm_regs regs{};
  regs.rip = GUEST_CODE_BASE;
  regs.rflags = 0x2;  // reserved bit 1; IF clear (no IDT: nothing may interrupt us)
  regs.rdi = record;
  regs.rsi = index;
  RETURN_IF_ERROR(Ioctl(fd, KVM_SET_REGS, &regs, "KVM_SET_REGS").status());
  // The whole product rests on user space setting the revision a guest reads (KVM accepts
  // host-initiated writes of MSR_IA32_UCODE_REV); say so plainly when this KVM does not.
  if (absl::Status s = SetMsr(fd, kMsrIa32UcodeRev, ucode_rev_msr); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KVM lacks user-space writes of MSR 0x8B (IA32_UCODE_REV), needed to set the guest's "
        "microcode revision: ",
        s.message()));
  }
  // With the in-kernel LAPIC, every vCPU but 0 starts waiting for INIT/SIPI (KVM API
  // document 4.38 KVM_SET_MP_STATE); ours start running straight away.
  kvm_mp_state mp{KVM_MP_STATE_RUNNABLE};
  RETURN_IF_ERROR(Ioctl(fd, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE RUNNABLE").status());

  if (tsc_khz_ == 0) {
    int khz = ioctl(fd, KVM_GET_TSC_KHZ, 0);
    if (khz > 0) tsc_khz_ = khz;
  }
  return v;
}

absl::StatusOr<uint64_t> GetMsr(int vcpu_fd, uint32_t index) {
  KvmMsrsOne m{};
  m.header.n = 1;
  m.entry.index = index;
  int r = ioctl(vcpu_fd, kKvmGetMsrs, &m);
  if (r < 0) return ErrnoStatus(errno, absl::StrFormat("KVM_GET_MSRS 0x%x", index));
  if (r != 1) {
    return absl::InternalError(absl::StrFormat("KVM_GET_MSRS 0x%x: got %d of 1 MSRs", index, r));
  }
  return m.entry.data;
}

absl::Status SetMsr(int vcpu_fd, uint32_t index, uint64_t value) {
  KvmMsrsOne m{};
  m.header.n = 1;
  m.entry.index = index;
  m.entry.data = value;
  int r = ioctl(vcpu_fd, kKvmSetMsrs, &m);
  if (r < 0) {
    return ErrnoStatus(errno, absl::StrFormat("KVM_SET_MSRS 0x%x=0x%x", index, value));
  }
  if (r != 1) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "KVM_SET_MSRS 0x%x=0x%x: set %d of 1 MSRs (KVM refused the write)", index, value, r));
  }
  return absl::OkStatus();
}

}  // namespace ucode::vmm
