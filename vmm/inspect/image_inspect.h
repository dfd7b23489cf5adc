// Inspect: every member of microcode files summarized (or its failed check), the one that
// would be selected for a CPU with the reason for every other, and the text an operator
// reads. ucoded's InspectImage and `ucodectl inspect` (local or `--server`) build and print
// the same ucode.v1.InspectImageResponse here.
#ifndef UCODE_VMM_INSPECT_IMAGE_INSPECT_H_
#define UCODE_VMM_INSPECT_IMAGE_INSPECT_H_

#include <cstdint>
#include <string>

#include "absl/types/span.h"
#include "host/microcode/selection.h"
#include "proto/ucode/v1/ucoded.pb.h"

namespace ucode::inspect {

// One input: its bytes, and the path its summaries carry (empty for a single anonymous one).
struct ImageFile {
  std::string path;
  absl::Span<const uint8_t> bytes;
};

// Pure: never fails (a malformed member is reported in its summary). The selection runs
// over the valid members of every file together. `cpu` null means "no CPU to select for"
// (selected_index -1, with `no_cpu_reason` as the reason when it is not empty).
ucode::v1::InspectImageResponse InspectImages(absl::Span<const ImageFile> files,
                                              const microcode::CpuIdentity* cpu,
                                              microcode::MinRevPolicy policy,
                                              const std::string& no_cpu_reason);

// One line per image (`PATH@0xOFFSET  sig ...  valid`, the fields iucode_tool -l lists),
// then the selection's reasons and its outcome.
std::string InspectText(const ucode::v1::InspectImageResponse& response);

// True when every image is valid: `ucodectl inspect` exits 0 only then.
bool AllValid(const ucode::v1::InspectImageResponse& response);

}  // namespace ucode::inspect

#endif  // UCODE_VMM_INSPECT_IMAGE_INSPECT_H_
