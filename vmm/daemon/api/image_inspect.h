// InspectImage: every member of a microcode file summarized (or its failed check), and the
// one that would be selected for a CPU with the reason for every other.
#ifndef UCODE_VMM_DAEMON_API_IMAGE_INSPECT_H_
#define UCODE_VMM_DAEMON_API_IMAGE_INSPECT_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "host/microcode/selection.h"
#include "proto/ucode/v1/ucoded.pb.h"

namespace ucode::daemon {

// Pure: never fails (a malformed member is reported in its summary). `cpu` null means "no
// CPU to select for" (selected_index -1, with `no_cpu_reason` as the reason).
ucode::v1::InspectImageResponse InspectImage(absl::Span<const uint8_t> bytes,
                                             const microcode::CpuIdentity* cpu,
                                             const std::string& no_cpu_reason);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_API_IMAGE_INSPECT_H_
