// The staging driver: pushes a validated image through every package's staging mailbox
// while the host keeps running, so that activation inside the rendezvous is short.
// Protocol in mailbox_protocol.h; flow as the Linux staging series' do_stage()
// (arch/x86/kernel/cpu/microcode/intel.c), with two differences: packages are staged in
// parallel (the kernel does one after another), and besides the kernel's 2x-image budget
// each chunk has a retransmit cap (a reviewer's suggestion on the series).
//
// Threads: StageAllPackages() starts one thread per package and joins them before it
// returns. The progress callback is called from those threads, concurrently, once per
// transaction (4 KiB), never per dword. Packages share nothing while they transfer: each
// thread keeps its counters on its stack and writes its PackageStaging only before and
// after the transfer.
// The per-dword path is one load and one MmioWindow::Write32, with no allocation, lock
// or clock read (bench_staging and callgrind-staging measure it).
#ifndef UCODE_HOST_STAGING_STAGING_DRIVER_H_
#define UCODE_HOST_STAGING_STAGING_DRIVER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "host/platform/mailbox_protocol.h"
#include "host/platform/platform.h"

namespace ucode::staging {

struct StagingProgress {
  int package = 0;
  size_t image_bytes = 0;
  size_t next_offset = 0;   // what the device asked for next (image_bytes when done)
  size_t bytes_sent = 0;    // retransmits included
  int chunks = 0;           // transactions completed
  int retransmits = 0;
  bool done = false;
};
using StagingProgressFn = std::function<void(const StagingProgress&)>;

struct StagingOptions {
  absl::Duration transaction_timeout = platform::kMboxTransactionTimeout;
  // STATUS is first read one interval after GO, then once per interval (the kernel's
  // wait_for_transaction(): msleep(1) before every read), so a READY still set from the
  // previous transaction is not taken for this one's. Zero polls at once: only for a
  // device known to clear READY at GO (the model in benchmarks).
  absl::Duration poll_interval = platform::kMboxPollInterval;
  int max_chunk_retransmits = 8;  // per chunk offset
  bool parallel = true;
  StagingProgressFn progress;     // optional; called from staging threads
  // Stage even where the kernel stages by itself (KernelStagingConflict): the operator's
  // explicit override (ucodectl stage --force).
  bool force = false;

  // Optional; polled from the staging threads before each transaction and while a slow
  // device is polled: true stops the transfer (CANCELLED), and the package's mailbox is
  // reset with ABORT like any failed one. Must be cheap and thread-safe.
  std::function<bool()> cancelled;
};

struct PackageStaging {
  int package = 0;
  int cpu = -1;              // the CPU whose MSR 0x7A5 named the mailbox
  uint64_t mailbox_addr = 0;
  absl::Status status;       // OK when the device holds the whole image
  size_t bytes_sent = 0;
  int transactions = 0;
  int retransmits = 0;
  absl::Duration elapsed;

  [[nodiscard]] bool staged() const { return status.ok(); }
};

struct StagingReport {
  size_t image_bytes = 0;
  std::vector<PackageStaging> packages;  // in package order
  absl::Duration elapsed;                // wall time of the whole staging

  [[nodiscard]] int staged_count() const;
  [[nodiscard]] bool all_staged() const;
  // "staged on 2/2 packages in 12.3ms" or with each failed package's reason.
  [[nodiscard]] std::string Summary() const;
};

// True if the CPU advertises staging (kernel: staging_available()): MSR 0x10A exists
// (CPUID.7.0:EDX[29], checked first: reading it on a CPU without it is a #GP, which means
// "unsupported", not an error), its bit 16 says MCU_ENUMERATION exists, and that MSR's
// bit 4 says staging.
absl::StatusOr<bool> StagingSupported(platform::Platform& platform, int cpu);

// Why staging from user space is pointless on this host, or "" if it is not: a Linux
// 6.19+ kernel on a CPU that advertises staging stages the image itself inside every
// reload, starting with an ABORT of each mailbox (intel.c init_stage()), which discards
// what ucode pushed through /dev/mem.
absl::StatusOr<std::string> KernelStagingConflict(platform::Platform& platform, int cpu);

// Stages `image` through one mailbox window: ABORT, then request/response transactions
// until the end marker. Fills `result` (bytes, transactions, retransmits, accesses) and
// returns the first failure, naming the package and the values.
absl::Status StageThroughMailbox(platform::MmioWindow& mailbox, absl::Span<const uint8_t> image,
                                 const StagingOptions& options, PackageStaging& result);

// Stages `image` on every package (first online primary thread of each). Never fails as a
// whole: staging is opportunistic, each package reports its own outcome. Where the kernel
// stages by itself every package is refused with the reason, unless options.force.
StagingReport StageAllPackages(platform::Platform& platform, absl::Span<const uint8_t> image,
                               const StagingOptions& options);

}  // namespace ucode::staging

#endif  // UCODE_HOST_STAGING_STAGING_DRIVER_H_
