// Handle on one ucode-vmm child process: spawn, control-socket calls, shutdown.
// Owned by the coordinator's thread; not thread-safe.
#ifndef UCODE_VMM_RENDEZVOUS_VMM_PROCESS_H_
#define UCODE_VMM_RENDEZVOUS_VMM_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "host/base/unique_fd.h"

namespace ucode::rendezvous {

struct VmSpec {
  std::string name;
  std::string program = "spin";  // spin, cli-spin, halt, exit-storm
  int vcpus = 2;
  int memory_mib = 4;
  uint32_t initial_revision = 1;  // what the guest reads in MSR 0x8B[63:32] at start
  int refuse_park_vcpu = -1;      // test hook: this vCPU thread never parks
  int stale_view_vcpu = -1;       // test hook: this vCPU loses its MSR 0x8B writes
};

// Where ucode-vmm is: $UCODE_VMM, else the Bazel runfiles of the running program, else
// beside it. NOT_FOUND lists the places tried.
absl::StatusOr<std::string> FindVmmBinary();

class VmmProcess {
 public:
  // Starts `vmm_path` for `spec`; its stdout/stderr go to `log_path`, which must not exist
  // (created 0600 with O_EXCL | O_NOFOLLOW: a file or symlink already there fails the
  // spawn), or, if empty, to ours. Only the child's end of the control socket is inherited.
  static absl::StatusOr<std::unique_ptr<VmmProcess>> Spawn(const std::string& vmm_path,
                                                           const VmSpec& spec,
                                                           const std::string& log_path);
  VmmProcess(const VmmProcess&) = delete;
  VmmProcess& operator=(const VmmProcess&) = delete;
  ~VmmProcess();  // Stop()

  // One request/reply on the control socket; `fd` (if >= 0) goes along with SCM_RIGHTS.
  // An "ERR ..." reply becomes an error naming the VM.
  absl::StatusOr<std::string> Call(const std::string& request, int fd = -1,
                                   absl::Duration timeout = absl::Seconds(5));

  // QUIT and wait for exit; SIGKILL if it does not exit within `grace`. Idempotent.
  absl::Status Stop(absl::Duration grace = absl::Seconds(2));

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const VmSpec& spec() const { return spec_; }
  [[nodiscard]] bool exited() const { return exited_; }
  // Without waiting: true (and the process reaped) if it has exited, e.g. killed by a
  // signal. Never blocks.
  bool PollExited();
  // How it ended ("killed by signal 9", "exit status 1"); "" while it runs.
  [[nodiscard]] const std::string& exit_description() const { return exit_description_; }

 private:
  VmmProcess(VmSpec spec, pid_t pid, UniqueFd pidfd, UniqueFd control);
  bool WaitExit(absl::Duration timeout);
  void Reap();

  VmSpec spec_;
  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd control_;
  bool exited_ = false;
  std::string exit_description_;
};

}  // namespace ucode::rendezvous

#endif  // UCODE_VMM_RENDEZVOUS_VMM_PROCESS_H_
