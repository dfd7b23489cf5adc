#include "host/staging/staging_driver.h"

#include <algorithm>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/status_macros.h"

namespace ucode::staging {
namespace {

using platform::MmioWindow;

// The narrow data registers (mailbox_protocol.h): one dword at a time, reads acknowledged.
void WriteDword(MmioWindow& m, uint32_t v) { m.Write32(platform::kMboxWrDataOffset, v); }
void WriteQword(MmioWindow& m, uint64_t v) {
  WriteDword(m, static_cast<uint32_t>(v));
  WriteDword(m, static_cast<uint32_t>(v >> 32));
}
uint32_t ReadDword(MmioWindow& m) {
  const uint32_t v = m.Read32(platform::kMboxRdDataOffset);
  m.Write32(platform::kMboxRdDataOffset, 0);
  return v;
}

// Polls STATUS until READY or ERROR, in the kernel's order (wait_for_transaction()): wait
// one interval, then read, so that READY left over from the previous transaction, which
// the device clears only once it takes the GO, is never read as this one's answer.
absl::Status WaitForTransaction(MmioWindow& m, int package, size_t offset,
                                const StagingOptions& options) {
  const absl::Time deadline = absl::Now() + options.transaction_timeout;
  for (;;) {
    if (options.poll_interval > absl::ZeroDuration()) absl::SleepFor(options.poll_interval);
    const uint32_t status = m.Read32(platform::kMboxStatusOffset);
    if (status & platform::kMboxStatusError) {
      return absl::AbortedError(absl::StrFormat(
          "package %d: mailbox STATUS.ERROR (0x%08x) for chunk at offset 0x%x", package, status,
          offset));
    }
    if (status & platform::kMboxStatusReady) return absl::OkStatus();
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrFormat(
          "package %d: mailbox not READY %s after GO for chunk at offset 0x%x", package,
          absl::FormatDuration(options.transaction_timeout), offset));
    }
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError(absl::StrFormat(
          "package %d: cancelled while the chunk at offset 0x%x was in flight", package, offset));
    }
  }
}

// The per-dword path: one unaligned load and one narrow register write per dword, nothing
// else (no allocation, lock or clock read per dword).
void SendChunk(MmioWindow& m, absl::Span<const uint8_t> chunk) {
  WriteQword(m, platform::MboxHeader(platform::kMboxHeaderBytes + platform::kMboxCommandBytes +
                                     chunk.size()));
  WriteQword(m, platform::kMboxCommandLoad);
  // Image spans carry no alignment promise; memcpy compiles to a plain load.
  const uint8_t* p = chunk.data();
  const uint8_t* const end = p + chunk.size();
  for (; p != end; p += 4) {
    uint32_t dword;
    std::memcpy(&dword, p, sizeof(dword));
    WriteDword(m, dword);
  }
  m.Write32(platform::kMboxControlOffset, platform::kMboxControlGo);
}

// Per-package transfer counters, kept on the staging thread's stack and copied to the
// shared report once: packages staged in parallel write no shared cache line per chunk.
struct TransferCounters {
  size_t bytes_sent = 0;
  int transactions = 0;
  int retransmits = 0;
};

absl::Status Transfer(MmioWindow& m, absl::Span<const uint8_t> image, const StagingOptions& options,
                      int pkg, TransferCounters& c);

}  // namespace

absl::Status StageThroughMailbox(MmioWindow& m, absl::Span<const uint8_t> image,
                                 const StagingOptions& options, PackageStaging& r) {
  const size_t size = image.size();
  if (size == 0 || size % 4 != 0 || size >= platform::kMboxOffsetEnd) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "package %d: image size 0x%x is not a non-zero multiple of 4", r.package, size));
  }
  TransferCounters c{.bytes_sent = r.bytes_sent,
                     .transactions = r.transactions,
                     .retransmits = r.retransmits};
  absl::Status status = Transfer(m, image, options, r.package, c);
  r.bytes_sent = c.bytes_sent;
  r.transactions = c.transactions;
  r.retransmits = c.retransmits;
  return status;
}

namespace {

absl::Status Transfer(MmioWindow& m, absl::Span<const uint8_t> image, const StagingOptions& options,
                      int pkg, TransferCounters& c) {
  const size_t size = image.size();
  // ABORT resets the device; it needs no status check (kernel: init_stage()).
  m.Write32(platform::kMboxControlOffset, platform::kMboxControlAbort);
  // Times each chunk was sent, by the 4 KiB page its offset falls in (the device asks for
  // page offsets; an unaligned one counts against its page). One allocation per package.
  std::vector<int> sends(size / platform::kMboxChunkBytes + 1, 0);
  size_t offset = 0;
  for (;;) {
    const size_t chunk = std::min(platform::kMboxChunkBytes, size - offset);
    if (c.bytes_sent + chunk > 2 * size) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "package %d: transfer budget exhausted: 0x%x bytes sent, next chunk 0x%x at 0x%x would "
          "pass 2x image size 0x%x",
          pkg, c.bytes_sent, chunk, offset, size));
    }
    int& times = sends[offset / platform::kMboxChunkBytes];
    if (times > options.max_chunk_retransmits) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "package %d: chunk at offset 0x%x requested %d times, retransmit cap %d", pkg, offset,
          times + 1, options.max_chunk_retransmits));
    }
    if (options.cancelled && options.cancelled()) {
      return absl::CancelledError(absl::StrFormat(
          "package %d: cancelled after %d transactions, at offset 0x%x of 0x%x", pkg,
          c.transactions, offset, size));
    }
    if (times++ > 0) ++c.retransmits;
    SendChunk(m, image.subspan(offset, chunk));
    c.bytes_sent += chunk;
    ++c.transactions;
    RETURN_IF_ERROR(WaitForTransaction(m, pkg, offset, options));

    // Response: 64-bit header, next offset, status (kernel: fetch_next_offset()).
    uint64_t header = ReadDword(m);
    header |= uint64_t{ReadDword(m)} << 32;
    const uint32_t next = ReadDword(m);
    const uint32_t status = ReadDword(m);
    if (header != platform::kMboxResponseHeader) {
      return absl::DataLossError(
          absl::StrFormat("package %d: response header 0x%016x, expected 0x%016x (chunk at 0x%x)",
                          pkg, header, platform::kMboxResponseHeader, offset));
    }
    if (status & platform::kMboxResponseError) {
      return absl::AbortedError(absl::StrFormat(
          "package %d: response status 0x%x has the error bit (chunk at 0x%x)", pkg, status, offset));
    }
    if (next != platform::kMboxOffsetEnd && next >= size) {
      return absl::OutOfRangeError(absl::StrFormat(
          "package %d: response offset 0x%x beyond image end 0x%x", pkg, next, size));
    }
    // Chunks are sent a dword at a time: an unaligned offset would make the last chunk's
    // loop step over the image's end.
    if (next != platform::kMboxOffsetEnd && next % 4 != 0) {
      return absl::OutOfRangeError(absl::StrFormat(
          "package %d: response offset 0x%x is not a multiple of 4 (chunk at 0x%x)", pkg, next,
          offset));
    }
    const bool done = next == platform::kMboxOffsetEnd;
    offset = done ? size : next;
    if (options.progress) {
      options.progress(StagingProgress{.package = pkg,
                                       .image_bytes = size,
                                       .next_offset = offset,
                                       .bytes_sent = c.bytes_sent,
                                       .chunks = c.transactions,
                                       .retransmits = c.retransmits,
                                       .done = done});
    }
    if (done) return absl::OkStatus();
  }
}

}  // namespace

absl::StatusOr<bool> StagingSupported(platform::Platform& platform, int cpu) {
  ASSIGN_OR_RETURN(bool has_arch_caps, platform.HasArchCapabilities(cpu));
  if (!has_arch_caps) return false;
  ASSIGN_OR_RETURN(uint64_t arch_caps, platform.ReadMsr(cpu, platform::kMsrArchCapabilities));
  if (!(arch_caps & platform::kArchCapMcuEnumeration)) return false;
  ASSIGN_OR_RETURN(uint64_t enumeration, platform.ReadMsr(cpu, platform::kMsrMcuEnumeration));
  return (enumeration & platform::kMcuEnumerationStaging) != 0;
}

absl::StatusOr<std::string> KernelStagingConflict(platform::Platform& platform, int cpu) {
  const std::string release = platform.KernelRelease();
  if (release.empty() || !platform::KernelReleaseAtLeast(release, 6, 19)) return std::string();
  ASSIGN_OR_RETURN(bool supported, StagingSupported(platform, cpu));
  if (!supported) return std::string();
  return absl::StrFormat(
      "kernel %s stages microcode itself on this CPU (Linux 6.19+, MSR 0x10A bit 16, MSR 0x7B "
      "bit 4): its reload first ABORTs every mailbox, discarding what ucode stages; not "
      "staging (--force stages anyway)",
      release);
}

namespace {

void StageOnePackage(platform::Platform& platform, absl::Span<const uint8_t> image,
                     const StagingOptions& options, PackageStaging& r) {
  const absl::Time start = absl::Now();
  r.status = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(bool supported, StagingSupported(platform, r.cpu));
    if (!supported) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "package %d: staging unsupported: cpu %d does not advertise it (CPUID.7.0:EDX[29], "
          "MSR 0x10A bit 16, MSR 0x7B bit 4)",
          r.package, r.cpu));
    }
    ASSIGN_OR_RETURN(r.mailbox_addr, platform.ReadMsr(r.cpu, platform::kMsrMcuStagingMboxAddr));
    absl::StatusOr<std::unique_ptr<platform::MmioWindow>> window =
        platform.MapMmio(r.mailbox_addr, platform::kMboxWindowSize);
    if (!window.ok()) {
      return absl::Status(window.status().code(),
                          absl::StrCat("package ", r.package, ": ", window.status().message()));
    }
    absl::Status s = StageThroughMailbox(**window, image, options, r);
    // Leave a failed device idle rather than mid-transfer: nothing half-staged remains.
    if (!s.ok()) (*window)->Write32(platform::kMboxControlOffset, platform::kMboxControlAbort);
    return s;
  }();
  r.elapsed = absl::Now() - start;
}

}  // namespace

StagingReport StageAllPackages(platform::Platform& platform, absl::Span<const uint8_t> image,
                               const StagingOptions& options) {
  StagingReport report;
  report.image_bytes = image.size();
  const absl::Time start = absl::Now();
  absl::StatusOr<platform::Topology> topology = platform.GetTopology();
  if (!topology.ok()) {
    report.packages.push_back(PackageStaging{.status = topology.status()});
    return report;
  }
  for (int cpu : topology->PackageLeaders()) {
    report.packages.push_back(PackageStaging{.package = topology->Find(cpu)->package, .cpu = cpu});
  }
  if (!options.force && !report.packages.empty()) {
    absl::StatusOr<std::string> conflict = KernelStagingConflict(platform, report.packages[0].cpu);
    if (!conflict.ok() || !conflict->empty()) {
      for (PackageStaging& r : report.packages) {
        r.status = conflict.ok() ? absl::FailedPreconditionError(*conflict) : conflict.status();
      }
      report.elapsed = absl::Now() - start;
      return report;
    }
  }
  if (options.parallel && report.packages.size() > 1) {
    std::vector<std::jthread> threads;
    for (PackageStaging& r : report.packages) {
      threads.emplace_back([&platform, image, &options, &r] {
        StageOnePackage(platform, image, options, r);
      });
    }
  } else {
    for (PackageStaging& r : report.packages) StageOnePackage(platform, image, options, r);
  }
  report.elapsed = absl::Now() - start;
  return report;
}

int StagingReport::staged_count() const {
  return static_cast<int>(std::count_if(packages.begin(), packages.end(),
                                        [](const PackageStaging& p) { return p.staged(); }));
}

bool StagingReport::all_staged() const {
  return !packages.empty() && staged_count() == static_cast<int>(packages.size());
}

std::string StagingReport::Summary() const {
  std::string out = absl::StrFormat("staged %u KiB on %d/%d packages in %s", image_bytes / 1024,
                                    staged_count(), packages.size(), absl::FormatDuration(elapsed));
  for (const PackageStaging& p : packages) {
    if (!p.staged()) absl::StrAppend(&out, "; ", p.status.message());
  }
  return out;
}

}  // namespace ucode::staging
