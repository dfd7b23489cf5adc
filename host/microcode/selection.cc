#include "host/microcode/selection.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ucode::microcode {
namespace {

// Platform-flags mask the kernel builds for a CPU in intel_cpu_collect_info():
// 1 << MSR 0x17[52:50], or 0 for CPUs without the MSR.
uint32_t CpuPlatformMask(const CpuIdentity& cpu) {
  return cpu.platform_id < 8 ? (uint32_t{1} << cpu.platform_id) : 0;
}

// Where `image` matches `cpu`: "primary", "extended entry N", or nullopt.
std::optional<std::string> MatchSource(const MicrocodeImage& image, const CpuIdentity& cpu) {
  if (SignatureMatches(image.header.signature, image.header.platform_flags, cpu)) {
    return std::string("primary signature");
  }
  for (size_t i = 0; i < image.extended_signatures.size(); ++i) {
    const ExtendedSignature& e = image.extended_signatures[i];
    if (SignatureMatches(e.signature, e.platform_flags, cpu)) {
      return absl::StrFormat("extended signature %u", i);
    }
  }
  return std::nullopt;
}

// Why a late load of `image` would be unsafe under the minimal-revision rule (the
// kernel's ucode_validate_minrev(): min_req_ver 0 means the image never declared a safe
// baseline; the running revision must be at least min_req_ver, compared unsigned there).
std::optional<std::string> MinRevProblem(const MicrocodeImage& image, const CpuIdentity& cpu) {
  const uint32_t min_rev = image.header.min_req_revision;
  if (min_rev == 0) return std::string("min_rev 0 (no safe late-load baseline declared)");
  if (cpu.current_revision < min_rev) {
    return absl::StrFormat("current revision 0x%x below min_rev 0x%x (load early instead)",
                           cpu.current_revision, min_rev);
  }
  return std::nullopt;
}

}  // namespace

bool IsNewerRevision(uint32_t candidate, uint32_t current) { return candidate > current; }

bool SignatureMatches(uint32_t signature, uint32_t pf_mask, const CpuIdentity& cpu) {
  if (signature != cpu.signature) return false;
  // intel_cpu_signatures_match(): the flags are both zero or they intersect.
  const uint32_t cpu_mask = CpuPlatformMask(cpu);
  return cpu_mask == pf_mask || (cpu_mask & pf_mask) != 0;
}

SignatureMatch MatchImage(const MicrocodeImage& image, const CpuIdentity& cpu) {
  if (SignatureMatches(image.header.signature, image.header.platform_flags, cpu)) {
    return SignatureMatch::kPrimary;
  }
  for (const ExtendedSignature& e : image.extended_signatures) {
    if (SignatureMatches(e.signature, e.platform_flags, cpu)) return SignatureMatch::kExtended;
  }
  return SignatureMatch::kNone;
}

Selection SelectImage(absl::Span<const MicrocodeImage> images, const CpuIdentity& cpu,
                      MinRevPolicy policy) {
  Selection out;
  out.candidates.reserve(images.size());
  std::optional<size_t> best;
  std::vector<bool> eligible(images.size(), false);
  for (size_t i = 0; i < images.size(); ++i) {
    const MicrocodeImage& image = images[i];
    Candidate c{i, false, ""};
    std::optional<std::string> source = MatchSource(image, cpu);
    if (!source) {
      c.reason = absl::StrFormat(
          "signature 0x%x pf 0x%x (+%u extended) does not match cpu signature 0x%x pf 0x%x",
          image.header.signature, image.header.platform_flags, image.extended_signatures.size(),
          cpu.signature, CpuPlatformMask(cpu));
      c.verdict = Verdict::kNoMatch;
    } else if (!IsNewerRevision(image.revision(), cpu.current_revision)) {
      c.reason = absl::StrFormat("revision 0x%x not newer than current 0x%x", image.revision(),
                                 cpu.current_revision);
      c.verdict = Verdict::kNotNewer;
    } else if (std::optional<std::string> unsafe = MinRevProblem(image, cpu);
               unsafe && policy == MinRevPolicy::kEnforce) {
      c.reason = absl::StrCat("unsafe for late load: ", *unsafe);
      c.verdict = Verdict::kMinRevUnsafe;
    } else {
      c.reason = absl::StrFormat("matches %s, revision 0x%x newer than current 0x%x", *source,
                                 image.revision(), cpu.current_revision);
      if (unsafe) absl::StrAppend(&c.reason, "; min-rev rule ignored: ", *unsafe);
      eligible[i] = true;
      // Strictly newer wins, so the first of equal revisions stays (as the kernel scans).
      if (!best || IsNewerRevision(image.revision(), images[*best].revision())) best = i;
    }
    out.candidates.push_back(std::move(c));
  }
  if (!best) return out;
  out.image = &images[*best];
  for (Candidate& c : out.candidates) {
    if (c.index == *best) {
      c.selected = true;
      c.verdict = Verdict::kSelected;
      c.reason = absl::StrCat("selected: ", c.reason);
    } else if (eligible[c.index]) {
      c.verdict = Verdict::kSuperseded;
      c.reason = absl::StrFormat("eligible but superseded by image %u revision 0x%x (%s)",
                                 *best, images[*best].revision(), c.reason);
    }
  }
  return out;
}

std::string FirmwareFileName(uint32_t signature) {
  // x86_family()/x86_model()/x86_stepping() (arch/x86/lib/cpu.c): the extended family
  // adds in for family 0xf, the extended model for family >= 6.
  uint32_t family = (signature >> 8) & 0xf;
  if (family == 0xf) family += (signature >> 20) & 0xff;
  uint32_t model = (signature >> 4) & 0xf;
  if (family >= 6) model += ((signature >> 16) & 0xf) << 4;
  return absl::StrFormat("%02x-%02x-%02x", family, model, signature & 0xf);
}

}  // namespace ucode::microcode
