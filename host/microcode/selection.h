// Choosing the image for a CPU, as the kernel's intel_find_matching_signature() and
// intel_microcode_late_load checks do, with the reason every other image was passed over.
#ifndef UCODE_HOST_MICROCODE_SELECTION_H_
#define UCODE_HOST_MICROCODE_SELECTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "host/microcode/microcode_image.h"

namespace ucode::microcode {

inline constexpr uint32_t kNoPlatformId = 0xffffffff;

// What the host reports about one CPU.
struct CpuIdentity {
  uint32_t signature = 0;         // CPUID(1).EAX
  uint32_t platform_id = 0;       // MSR 0x17 bits 52:50 (0..7); the image mask bit is 1 << id
                                  // kNoPlatformId: no MSR 0x17 (family 6 model < 5), mask 0
  uint32_t current_revision = 0;  // MSR 0x8B bits 63:32 after writing 0 and CPUID(1) (SDM
                                  // Vol. 3A §10.11.7); on Linux without the msr device, the
                                  // kernel's copy in sysfs microcode/version
};

// The minimal-revision rule (the kernel's ucode_validate_minrev()): an image whose
// min_req_ver is 0, or above the running revision, is unsafe to late-load. The kernel
// refuses it when built/booted with force_minrev and otherwise loads it and taints.
// kEnforce (ucode's default, the kernel's force_minrev=1) refuses it; kIgnore is the
// administrator's explicit override that loads it anyway (the kernel's default).
enum class MinRevPolicy { kEnforce, kIgnore };

// The rule that decided a candidate, for callers that act on it (a fleet rollout tells
// "already runs this revision" from "not for this CPU" without reading `reason`).
enum class Verdict {
  kSelected,
  kSuperseded,    // eligible, but a newer eligible image was selected
  kNoMatch,       // neither signature nor any extended signature matches the CPU
  kNotNewer,      // matches; the CPU already runs this revision or a newer one
  kMinRevUnsafe,  // matches and is newer, refused by the minimal-revision rule
};

struct Candidate {
  size_t index;        // into the span passed to SelectImage
  bool selected;
  std::string reason;  // why chosen, or why not ("signature 0x806f8 pf 0x87 does not match ...")
  Verdict verdict = Verdict::kNoMatch;
};

struct Selection {
  const MicrocodeImage* image = nullptr;  // null when nothing fits; never owning
  std::vector<Candidate> candidates;      // one per image, in input order
};

// True if `signature`/`pf_mask` matches `cpu` (family-model-stepping equal, pf bit set or
// both masks zero, as the kernel's cpu_signatures_match()).
bool SignatureMatches(uint32_t signature, uint32_t pf_mask, const CpuIdentity& cpu);

// How `image` matches `cpu`: by its primary signature, by an entry of its extended
// signature table (the kernel's intel_find_matching_signature()), or not at all.
enum class SignatureMatch { kNone, kPrimary, kExtended };
SignatureMatch MatchImage(const MicrocodeImage& image, const CpuIdentity& cpu);

// Picks the newest matching image that is newer than the running revision and passes the
// minimal-revision rule. Returns the selection (image null with reasons if nothing fits);
// an error only for a caller mistake.
Selection SelectImage(absl::Span<const MicrocodeImage> images, const CpuIdentity& cpu,
                      MinRevPolicy policy);

// True if `candidate` is a newer revision than `current`. Compared unsigned, as the kernel
// does (scan_microcode(), parse_microcode_blobs() and __apply_microcode() in
// arch/x86/kernel/cpu/microcode/intel.c compare `u32`/`unsigned int` revisions): on Linux
// the kernel makes the final choice, and ucode must never pick an image the kernel would
// refuse or refuse one it would load. The SDM calls the field signed; the kernel does not
// follow that, so neither do we.
bool IsNewerRevision(uint32_t candidate, uint32_t current);

// "06-8f-08" for a signature: the file name Linux looks for under intel-ucode/.
std::string FirmwareFileName(uint32_t signature);

}  // namespace ucode::microcode

#endif  // UCODE_HOST_MICROCODE_SELECTION_H_
