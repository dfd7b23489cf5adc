// The guest programs ucode-vmm can run, by name: spin, cli-spin, halt, exit-storm.
#ifndef UCODE_VMM_GUEST_GUEST_PROGRAMS_H_
#define UCODE_VMM_GUEST_GUEST_PROGRAMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ucode::guest {

struct GuestProgram {
  absl::string_view name;
  absl::Span<const uint8_t> code;  // flat binary, entry at offset 0
  bool records_revisions;          // reads MSR 0x8B in its loop (spin family)
};

// NOT_FOUND names the program asked for and the ones that exist.
absl::StatusOr<GuestProgram> FindGuestProgram(absl::string_view name);
std::vector<absl::string_view> GuestProgramNames();

}  // namespace ucode::guest

#endif  // UCODE_VMM_GUEST_GUEST_PROGRAMS_H_
