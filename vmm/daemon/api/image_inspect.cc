#include "vmm/daemon/api/image_inspect.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "host/microcode/microcode_image.h"

namespace ucode::daemon {
namespace {

ucode::v1::SelectionVerdict ToProto(microcode::Verdict v) {
  switch (v) {
    case microcode::Verdict::kSelected: return ucode::v1::SELECTION_VERDICT_SELECTED;
    case microcode::Verdict::kSuperseded: return ucode::v1::SELECTION_VERDICT_SUPERSEDED;
    case microcode::Verdict::kNoMatch: return ucode::v1::SELECTION_VERDICT_NO_MATCH;
    case microcode::Verdict::kNotNewer: return ucode::v1::SELECTION_VERDICT_NOT_NEWER;
    case microcode::Verdict::kMinRevUnsafe: return ucode::v1::SELECTION_VERDICT_MIN_REV_UNSAFE;
  }
  return ucode::v1::SELECTION_VERDICT_UNSPECIFIED;
}

}  // namespace

ucode::v1::InspectImageResponse InspectImage(absl::Span<const uint8_t> bytes,
                                             const microcode::CpuIdentity* cpu,
                                             const std::string& no_cpu_reason) {
  ucode::v1::InspectImageResponse out;
  out.set_selected_index(-1);
  std::vector<microcode::BundleEntry> entries = microcode::ParseBundle(bytes);
  std::vector<microcode::MicrocodeImage> valid;
  std::vector<int> summary_index;  // valid[i] is out.images(summary_index[i])
  for (const microcode::BundleEntry& entry : entries) {
    ucode::v1::ImageSummary* s = out.add_images();
    s->set_offset(entry.offset);
    if (!entry.image.ok()) {
      s->set_valid(false);
      s->set_error(std::string(entry.image.status().message()));
      continue;
    }
    const microcode::MicrocodeImage& img = *entry.image;
    s->set_valid(true);
    s->set_signature(img.header.signature);
    s->set_platform_flags(img.header.platform_flags);
    s->set_date(img.DateString());
    s->set_revision(img.revision());
    s->set_total_size(static_cast<uint32_t>(img.total_size()));
    s->set_min_req_revision(img.header.min_req_revision);
    for (const microcode::ExtendedSignature& e : img.extended_signatures) {
      ucode::v1::ExtendedSignature* x = s->add_extended_signatures();
      x->set_signature(e.signature);
      x->set_platform_flags(e.platform_flags);
    }
    valid.push_back(img);
    summary_index.push_back(out.images_size() - 1);
  }
  if (cpu == nullptr) {
    out.add_selection_reasons(no_cpu_reason);
    return out;
  }
  microcode::Selection sel =
      microcode::SelectImage(valid, *cpu, microcode::MinRevPolicy::kEnforce);
  for (const microcode::Candidate& c : sel.candidates) {
    int index = summary_index[c.index];
    if (c.selected) out.set_selected_index(index);
    out.mutable_images(index)->set_verdict(ToProto(c.verdict));
    out.add_selection_reasons(absl::StrCat("image ", index, ": ", c.reason));
  }
  if (valid.empty()) out.add_selection_reasons("no valid image to select");
  return out;
}

}  // namespace ucode::daemon
