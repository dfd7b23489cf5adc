// Finding a VMM process and its vCPU threads through /proc, for the freezer.
//
// QEMU names its vCPU threads "CPU N/ACCEL" ("CPU 0/KVM", "CPU 1/TCG") when started with
// `-name ...,debug-threads=on`, which libvirt always passes (QEMU's
// qemu_thread_create(), cpus.c "CPU %d/%s"). Everything read here is hostile input: a
// process may rename its threads or fake a command line at any time, so the caller checks
// the count against what libvirt says and nothing is frozen on a mismatch.
#ifndef UCODE_VMM_FREEZE_VCPU_THREADS_H_
#define UCODE_VMM_FREEZE_VCPU_THREADS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vmm/freeze/cgroup_plan.h"

namespace ucode::freeze {

// The vCPU index in a thread name "CPU N/ACCEL", or nullopt.
[[nodiscard]] std::optional<int> VcpuIndexFromComm(absl::string_view comm);

// Every thread of process `pid` under `proc_root` (normally "/proc"), the main thread
// first, each with its cgroup file and vCPU index (from its name). Fails unless exactly
// `expected_vcpus` threads are named as vCPUs, indices 0..expected_vcpus-1 each once; the
// error names what was found. A negative `expected_vcpus` skips that check (recovery).
[[nodiscard]] absl::StatusOr<std::vector<ThreadInput>> ReadVcpuThreads(absl::string_view proc_root,
                                                                       pid_t pid,
                                                                       int expected_vcpus);

// The one QEMU process (argv[0] ending in "qemu-system-<arch>" or "qemu-kvm") whose
// command line has `-uuid UUID`: libvirt passes the domain's UUID that way. NOT_FOUND if
// none, FAILED_PRECONDITION if several claim it.
[[nodiscard]] absl::StatusOr<pid_t> FindQemuByUuid(absl::string_view proc_root,
                                                   absl::string_view uuid);

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_VCPU_THREADS_H_
