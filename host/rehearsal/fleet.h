// The fleet a rehearsal checks a release against: one CPU SKU per line of a small text
// file, as an operator writes it from the fleet's inventory.
//
//   # SKU      signature  platform_id  revision    shape (PxCxT)  [hosts=N] [deadline=D]
//   spr-e5     0x806f8    7            0x2b000620  2x56x2         hosts=400 deadline=50ms
//
// platform_id is MSR 0x17 bits 52:50 (0..7), as host/platform's `platform_id` key names it
// (sysfs shows the mask, 1 << id, in cpu*/microcode/processor_flags); revision is what
// MSR 0x8B reads today; deadline is the VM dead-man deadline the SKU's hosts run with
// (absl duration syntax). Numbers are decimal or 0x hex.
#ifndef UCODE_HOST_REHEARSAL_FLEET_H_
#define UCODE_HOST_REHEARSAL_FLEET_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/microcode/selection.h"

namespace ucode::rehearsal {

// Limits on what a fleet file may ask for. The emulated host runs one thread per logical
// CPU, so a SKU's shape is bounded well below host/platform's own limits.
inline constexpr size_t kMaxFleetBytes = 1 << 20;
inline constexpr size_t kMaxSkus = 1024;
inline constexpr size_t kMaxSkuNameLength = 64;
inline constexpr int kMaxSkuCpus = 2048;
inline constexpr int64_t kMaxHosts = 100'000'000;
inline constexpr absl::Duration kMaxDeadline = absl::Hours(1);

struct FleetSku {
  std::string name;             // letters, digits, '.', '_', '-'; unique in the file
  microcode::CpuIdentity cpu;   // signature, platform id (0..7), current revision
  int packages = 1;
  int cores_per_package = 1;
  int threads_per_core = 1;
  std::optional<int64_t> hosts;              // how many hosts run this SKU
  std::optional<absl::Duration> deadline;    // VM dead-man deadline; none: not checked
  int line = 0;                              // in the fleet file, for messages

  [[nodiscard]] std::string Shape() const;   // "2x56x2"
};

// Parses a fleet file's text. INVALID_ARGUMENT names the line, the field and the value.
absl::StatusOr<std::vector<FleetSku>> ParseFleet(absl::string_view text);

// Reads and parses `path` (at most kMaxFleetBytes); errors are prefixed with the path.
absl::StatusOr<std::vector<FleetSku>> LoadFleet(const std::string& path);

}  // namespace ucode::rehearsal

#endif  // UCODE_HOST_REHEARSAL_FLEET_H_
