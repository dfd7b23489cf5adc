// ucode-vmm's main thread: owns the VM, the vCPU threads and the control socket.
//
// Control protocol (SOCK_SEQPACKET, one text message per packet, reply "OK ..." or
// "ERR <message>"):
//   ATTACH <slot> <deadman_ms>   + SCM_RIGHTS memfd of the rendezvous area: map it,
//                                publish this VM in vm[slot], start the vCPU threads.
//   STATS                        copy every vCPU's guest record into the area.
//   GAP_WINDOW                   open a new gap window in every vCPU's guest record
//                                (zero REC_MAX_GAP): the baseline the next park keeps.
//   QUIT                         stop the vCPUs and exit.
// End of file on the socket means the coordinator is gone: parked vCPUs release
// themselves (dead-man), the VMM logs it and exits.
#ifndef UCODE_VMM_KVM_VMM_SERVER_H_
#define UCODE_VMM_KVM_VMM_SERVER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "host/base/unique_fd.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/kvm/vcpu_thread.h"
#include "vmm/rendezvous/area.h"

namespace ucode::vmm {

struct VmmConfig {
  std::string name = "vm";
  std::string program = "spin";
  int vcpus = 1;
  size_t memory_bytes = 4 << 20;
  uint64_t initial_ucode_rev_msr = 0;
  int refuse_park_vcpu = -1;  // test hook
  int stale_view_vcpu = -1;   // test hook: this vCPU loses its MSR 0x8B writes
};

class VmmServer {
 public:
  // Builds the VM and its vCPUs (not yet running).
  static absl::StatusOr<std::unique_ptr<VmmServer>> Create(const VmmConfig& config,
                                                            UniqueFd control);
  ~VmmServer();

  // Serves the control socket until QUIT or end of file. Returns the process status.
  absl::Status Serve();

 private:
  VmmServer(VmmConfig config, KvmVm vm, std::vector<VcpuFd> vcpus, UniqueFd control);
  std::string Handle(const std::string& msg, UniqueFd received);
  absl::Status Attach(int slot, int deadman_ms, UniqueFd area_fd);
  void CopyGuestRecords();
  void OpenGapWindows();
  void OnCoordinatorGone();
  void StopVcpus();
  void Log(const std::string& msg) const;

  VmmConfig config_;
  KvmVm vm_;
  std::vector<VcpuFd> pending_vcpus_;  // handed to threads on ATTACH
  std::vector<std::unique_ptr<VcpuThread>> threads_;
  UniqueFd control_;
  Mapping area_mapping_;
  rendezvous::Area* area_ = nullptr;
  rendezvous::VmSlot* slot_ = nullptr;
  std::atomic<bool> coordinator_gone_{false};
};

}  // namespace ucode::vmm

#endif  // UCODE_VMM_KVM_VMM_SERVER_H_
