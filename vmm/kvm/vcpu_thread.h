// The thread that owns one vCPU: its fd, its kvm_run page and its exit loop. The rest of
// the world reaches it only through the rendezvous area (commands, acknowledgements) and
// the park signal, which any thread or process may send with tgkill().
//
// Run loop states (one function each, returning the next): running -> parked -> running,
// any -> exiting. Parking follows the KVM API document (5. kvm_run, immediate_exit):
// the signal handler only sets immediate_exit, so a kick that lands just before KVM_RUN
// still makes KVM_RUN return -EINTR at once; the thread then re-enters KVM_RUN once more
// with immediate_exit set so that a pending I/O or MMIO exit is completed before the
// vCPU is reported parked, and calls KVM_KVMCLOCK_CTRL on the vCPU fd (4.70). A parked
// thread is woken once per rendezvous: the release may carry the new MSR 0x8B, which the
// thread writes and reads back itself before it re-enters KVM_RUN (SetGuestView()).
#ifndef UCODE_VMM_KVM_VCPU_THREAD_H_
#define UCODE_VMM_KVM_VCPU_THREAD_H_

#include <signal.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "vmm/kvm/kvm_vm.h"
#include "vmm/rendezvous/area.h"

namespace ucode::vmm {

// The park signal. Its handler sets kvm_run::immediate_exit of the interrupted vCPU
// thread (release store) and nothing else; installed without SA_RESTART so a blocked
// KVM_RUN returns -EINTR.
inline constexpr int kParkSignal = SIGUSR1;
absl::Status InstallParkSignalHandler();

struct VcpuEnv {
  std::string vm_name;
  rendezvous::Area* area = nullptr;
  rendezvous::VmSlot* vm = nullptr;
  uint8_t* guest_memory = nullptr;
  absl::Duration deadman = absl::Seconds(2);  // longest a vCPU stays parked on its own
  bool refuse_park = false;                   // test hook: ignore park commands
  bool stale_view = false;  // test hook: skip the MSR 0x8B write (its read-back fails)
  const std::atomic<bool>* coordinator_gone = nullptr;
};

class VcpuThread {
 public:
  VcpuThread(VcpuFd vcpu, VcpuEnv env);
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;
  ~VcpuThread();  // RequestStop() + join

  // Starts the thread; returns once its tid is published in the area.
  void Start();
  // Asks the thread to leave its loop (kick + futex wake) without waiting.
  void RequestStop();
  // Sends the park signal to this thread (used by the VMM itself; the coordinator
  // sends the same signal from its own process).
  void Kick() const;
  [[nodiscard]] pid_t tid() const { return tid_.load(); }

 private:
  enum class Next { kRunning, kParked, kExiting };
  void Main();
  Next Running();
  Next Park(uint32_t seq);
  Next Parked();
  void SetGuestView();
  void ReleaseBarrier();
  Next Resume(uint32_t seq, bool ack);
  // Handles one exit; false when the vCPU cannot continue (state kExited is set).
  bool HandleExit();
  bool HandleIo();
  void Fail(const std::string& why);
  void Log(const std::string& msg) const;

  VcpuFd vcpu_;
  VcpuEnv env_;
  rendezvous::VcpuSlot* slot_;
  std::atomic<bool> stop_{false};
  std::atomic<pid_t> tid_{0};
  uint32_t handled_seq_ = 0;
  bool exit_to_complete_ = false;  // the last KVM_RUN returned an exit to user space
  std::string console_line_;
  absl::Notification started_;
  std::thread thread_;
};

}  // namespace ucode::vmm

#endif  // UCODE_VMM_KVM_VCPU_THREAD_H_
