#include "vmm/inspect/image_inspect.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/microcode/microcode_image.h"

namespace ucode::inspect {
namespace {

namespace mc = ::ucode::microcode;
using ucode::v1::ImageSummary;
using ucode::v1::InspectImageResponse;

ucode::v1::SelectionVerdict ToProto(mc::Verdict v) {
  switch (v) {
    case mc::Verdict::kSelected: return ucode::v1::SELECTION_VERDICT_SELECTED;
    case mc::Verdict::kSuperseded: return ucode::v1::SELECTION_VERDICT_SUPERSEDED;
    case mc::Verdict::kNoMatch: return ucode::v1::SELECTION_VERDICT_NO_MATCH;
    case mc::Verdict::kNotNewer: return ucode::v1::SELECTION_VERDICT_NOT_NEWER;
    case mc::Verdict::kMinRevUnsafe: return ucode::v1::SELECTION_VERDICT_MIN_REV_UNSAFE;
  }
  return ucode::v1::SELECTION_VERDICT_UNSPECIFIED;
}

void SetHeader(const mc::MicrocodeHeader& header, ImageSummary* s) {
  mc::MicrocodeImage image;  // its date and size read only the header
  image.header = header;
  s->set_signature(header.signature);
  s->set_platform_flags(header.platform_flags);
  s->set_date(image.DateString());
  s->set_revision(header.revision);
  s->set_total_size(static_cast<uint32_t>(image.total_size()));
  s->set_min_req_revision(header.min_req_revision);
}

// How the text and the reasons name an image: "image 3" from ucoded, "PATH@0xOFFSET" when
// it came from a named file.
std::string Where(const InspectImageResponse& r, int index) {
  const ImageSummary& s = r.images(index);
  if (s.path().empty()) return absl::StrCat("image ", index);
  return absl::StrFormat("%s@0x%x", s.path(), s.offset());
}

std::string TextLine(const InspectImageResponse& r, int index) {
  const ImageSummary& s = r.images(index);
  std::string line = Where(r, index);
  if (s.path().empty()) absl::StrAppendFormat(&line, "  offset 0x%x", s.offset());
  if (!s.date().empty()) {  // the header was there to read
    absl::StrAppendFormat(&line, "  sig 0x%08x  pf 0x%02x  %s  rev 0x%08x  size %u  min_rev 0x%08x",
                          s.signature(), s.platform_flags(), s.date(), s.revision(), s.total_size(),
                          s.min_req_revision());
  }
  if (s.valid()) {
    std::vector<std::string> ext;
    for (const ucode::v1::ExtendedSignature& e : s.extended_signatures()) {
      ext.push_back(absl::StrFormat("0x%08x/0x%02x", e.signature(), e.platform_flags()));
    }
    absl::StrAppend(&line, "  ext ", ext.empty() ? "-" : absl::StrJoin(ext, ","), "  valid");
  } else {
    absl::StrAppend(&line, "  INVALID: ", s.error());
  }
  return line;
}

}  // namespace

InspectImageResponse InspectImages(absl::Span<const ImageFile> files, const mc::CpuIdentity* cpu,
                                   mc::MinRevPolicy policy, const std::string& no_cpu_reason) {
  InspectImageResponse out;
  out.set_selected_index(-1);
  std::vector<mc::MicrocodeImage> valid;
  std::vector<int> summary_index;  // valid[i] is out.images(summary_index[i])
  for (const ImageFile& file : files) {
    for (mc::BundleEntry& entry : mc::ParseBundle(file.bytes)) {
      ImageSummary* s = out.add_images();
      s->set_path(file.path);
      s->set_offset(entry.offset);
      if (!entry.image.ok()) {
        s->set_error(std::string(entry.image.status().message()));
        std::optional<mc::MicrocodeHeader> header =
            mc::PeekHeader(file.bytes.subspan(entry.offset));
        if (header) SetHeader(*header, s);
        continue;
      }
      const mc::MicrocodeImage& img = *entry.image;
      s->set_valid(true);
      SetHeader(img.header, s);
      for (const mc::ExtendedSignature& e : img.extended_signatures) {
        ucode::v1::ExtendedSignature* x = s->add_extended_signatures();
        x->set_signature(e.signature);
        x->set_platform_flags(e.platform_flags);
      }
      valid.push_back(img);
      summary_index.push_back(out.images_size() - 1);
    }
  }
  if (cpu == nullptr) {
    if (!no_cpu_reason.empty()) out.add_selection_reasons(no_cpu_reason);
    return out;
  }
  mc::Selection selection = mc::SelectImage(valid, *cpu, policy);
  for (const mc::Candidate& c : selection.candidates) {
    int index = summary_index[c.index];
    if (c.selected) out.set_selected_index(index);
    out.mutable_images(index)->set_verdict(ToProto(c.verdict));
    out.add_selection_reasons(absl::StrCat(Where(out, index), ": ", c.reason));
  }
  if (valid.empty()) out.add_selection_reasons("no valid image to select");
  return out;
}

std::string InspectText(const InspectImageResponse& r) {
  std::string text;
  bool selection_ran = false;
  for (int i = 0; i < r.images_size(); ++i) {
    absl::StrAppend(&text, TextLine(r, i), "\n");
    selection_ran |= r.images(i).verdict() != ucode::v1::SELECTION_VERDICT_UNSPECIFIED;
  }
  for (const std::string& reason : r.selection_reasons())
    absl::StrAppend(&text, "  ", reason, "\n");
  if (r.selected_index() >= 0) {
    const ImageSummary& s = r.images(r.selected_index());
    absl::StrAppendFormat(&text, "=> select %s revision 0x%08x\n", Where(r, r.selected_index()),
                          s.revision());
  } else if (selection_ran) {
    absl::StrAppend(&text, "=> nothing to load\n");
  }
  return text;
}

bool AllValid(const InspectImageResponse& response) {
  for (const ImageSummary& s : response.images()) {
    if (!s.valid()) return false;
  }
  return true;
}

}  // namespace ucode::inspect
