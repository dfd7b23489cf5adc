// Test helper: a child process whose threads are named like QEMU's vCPU threads
// ("CPU N/KVM") and count loop iterations in shared memory, so a test can see whether a
// thread makes progress. Test-only.
#ifndef UCODE_VMM_FREEZE_FAKE_VMM_H_
#define UCODE_VMM_FREEZE_FAKE_VMM_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace ucode::freeze {

class FakeVmm {
 public:
  // Forks a process with `vcpus` spinning threads named "CPU n/KVM"; returns once every
  // thread runs.
  explicit FakeVmm(int vcpus);
  ~FakeVmm();  // SIGKILL + reap
  FakeVmm(const FakeVmm&) = delete;
  FakeVmm& operator=(const FakeVmm&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] uint64_t count(int vcpu) const;
  // The vCPU threads' TIDs, by index.
  [[nodiscard]] std::vector<pid_t> tids() const;
  // True when every vCPU's counter moves within `limit`.
  [[nodiscard]] bool AllProgress(absl::Duration limit) const;
  // True when no vCPU's counter moves over `window`.
  [[nodiscard]] bool NoneProgress(absl::Duration window) const;

 private:
  struct Shared {
    std::atomic<uint64_t> count[64];
    std::atomic<int32_t> tid[64];
  };
  int vcpus_;
  Shared* shared_ = nullptr;
  pid_t pid_ = -1;
};

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_FAKE_VMM_H_
