// EmulatedHostConfig: the shape and state of an emulated host, built in code, from a small
// `key = value` text file, or taken as the demo default (DemoHostConfig()).
#ifndef UCODE_HOST_PLATFORM_EMULATED_CONFIG_H_
#define UCODE_HOST_PLATFORM_EMULATED_CONFIG_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/platform/mailbox_model.h"

namespace ucode::platform {

// Time a core spends inside WRMSR 0x79: fixed + size x per-KiB rate, the rate being lower
// when the package's mailbox already holds the image. Defaults from public figures: a
// 561 KB Sapphire Rapids image took about 10 ms on a 192-thread host (Linux staging series
// cover letter), and Intel reported about 40 % less activation latency with staging.
struct ActivationModel {
  absl::Duration fixed = absl::Microseconds(500);
  absl::Duration per_kib_unstaged = absl::Nanoseconds(17000);
  absl::Duration per_kib_staged = absl::Nanoseconds(9800);

  [[nodiscard]] absl::Duration Cost(size_t image_bytes, bool staged) const;
  // "fixed 500us + 17us/KiB unstaged, 9.8us/KiB staged", for reports.
  [[nodiscard]] std::string Describe() const;
};

struct EmulatedHostConfig {
  int packages = 2;
  int cores_per_package = 4;
  int threads_per_core = 2;
  std::set<int> offline_cpus;  // Linux CPU numbers (see EmulatedPlatform for numbering)

  uint32_t signature = 0x000806f8;  // CPUID(1).EAX: Sapphire Rapids E5
  uint32_t platform_id = 7;         // MSR 0x17 bits 52:50; image mask bit 1 << id
  uint32_t revision = 0x2b000000;   // running revision (MSR 0x8B bits 63:32)

  // CPUID.(EAX=7,ECX=0):EDX[29]: MSR 0x10A exists (older CPUs #GP on it).
  bool arch_capabilities = true;
  bool staging = true;  // ARCH_CAPABILITIES bit 16 and MCU_ENUMERATION bit 4
  uint64_t mailbox_base = 0xfd000000;  // package p's mailbox at base + p * stride
  uint64_t mailbox_stride = 0x1000;
  MailboxBehavior mailbox;                            // every package
  std::map<int, MailboxBehavior> mailbox_by_package;  // overrides

  ActivationModel activation;
  std::set<int> failing_cpus;  // WRMSR 0x79 is rejected on these (fault injection)

  [[nodiscard]] int cpu_count() const { return packages * cores_per_package * threads_per_core; }
};

// The demo host: 2 packages x 4 cores x 2 threads, 0x806f8 pf 0x87 at 0x2b000000, staging.
EmulatedHostConfig DemoHostConfig();

// Parses `key = value` lines ('#' comments). Keys: packages, cores, threads, offline,
// signature, platform_id, revision, arch_capabilities, staging, mailbox_base, mailbox_fault,
// mailbox_fault_at, mailbox_fault_count, mailbox_delay_us, mailbox_access_ns,
// activation_fixed_us, activation_unstaged_us_per_kib, activation_staged_us_per_kib,
// failing_cpus. Lists are comma-separated; numbers may be hex (0x...); `_us` values may
// have a fraction (activation_staged_us_per_kib = 9.8). Starts from
// DemoHostConfig(), so a file names only what differs.
// Errors name the line number and the key, never the text of a line (the file may be one
// the caller cannot read: `--host-config /etc/shadow` under sudo). Values are range-checked
// (no silent truncation: signature=0x1ffffffff is refused), the shape capped at 4096
// logical CPUs.
absl::StatusOr<EmulatedHostConfig> ParseEmulatedHostConfig(absl::string_view text);
// Applies the lines of `text` to `config` without validating the result; `what` names the
// source in errors ("host config /path", "--host").
absl::Status ApplyEmulatedHostConfig(absl::string_view text, absl::string_view what,
                                     EmulatedHostConfig& config);

// Checks the shape: positive counts within limits, offline CPUs that exist.
absl::Status ValidateEmulatedHostConfig(const EmulatedHostConfig& config);

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_EMULATED_CONFIG_H_
