#include "host/rehearsal/report.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/text_table.h"
#include "proto/json.h"
#include "proto/ucode/v1/rehearsal.pb.h"

namespace ucode::rehearsal {
namespace {

namespace v1 = ::ucode::v1;

std::string Hex(uint32_t v) { return absl::StrFormat("0x%08x", v); }

std::string Window(const std::optional<absl::Duration>& d) {
  return d ? absl::FormatDuration(absl::Trunc(*d, absl::Microseconds(1))) : "-";
}

std::string Verdict(const SkuResult& r) {
  if (!r.ok()) return "FAIL";
  if (!r.has_update()) return absl::StrCat("ok, no update (", r.note, ")");
  return r.note.empty() ? "ok" : absl::StrCat("ok (", r.note, ")");
}

std::vector<std::string> Row(const SkuResult& r) {
  return {r.sku.name,
          r.sku.hosts ? absl::StrCat(*r.sku.hosts) : "-",
          r.sku.Shape(),
          r.image.empty() ? "-" : r.image,
          absl::StrCat(Hex(r.sku.cpu.current_revision), " -> ", Hex(r.new_revision)),
          r.match.empty() ? "-" : r.match,
          r.min_rev,
          Window(r.window_staged),
          Window(r.window_unstaged),
          r.sku.deadline ? absl::FormatDuration(*r.sku.deadline) : "-",
          Verdict(r)};
}

}  // namespace

std::string ReportTable(const RehearsalReport& report) {
  std::vector<std::vector<std::string>> rows = {{"SKU", "hosts", "shape", "image", "revision",
                                                 "match", "min-rev", "staged", "unstaged",
                                                 "deadline", "verdict"}};
  for (const SkuResult& r : report.skus) rows.push_back(Row(r));
  std::string out = TextTable(rows);
  absl::StrAppend(&out, "windows: the emulated host's ", report.model, "\n");
  const std::vector<std::string> failures = report.Failures();
  for (const std::string& f : failures) absl::StrAppend(&out, "FAIL ", f, "\n");
  int ok = 0;
  for (const SkuResult& r : report.skus) ok += r.ok();
  absl::StrAppendFormat(&out, "rehearsal: %d of %d SKUs pass, %d invalid images: %s\n", ok,
                        report.skus.size(), report.invalid.size(),
                        failures.empty() ? "PASS" : "FAIL");
  return out;
}

std::string ReportJson(const RehearsalReport& report) {
  v1::RehearsalReport out;
  out.set_ok(report.ok());
  out.set_model(report.model);
  for (const SkuResult& r : report.skus) {
    v1::RehearsalSku& sku = *out.add_skus();
    sku.set_sku(r.sku.name);
    sku.set_line(r.sku.line);
    sku.set_signature(Hex(r.sku.cpu.signature));
    sku.set_platform_id(r.sku.cpu.platform_id);
    sku.set_shape(r.sku.Shape());
    if (r.sku.hosts) sku.set_hosts(*r.sku.hosts);
    sku.set_image(r.image);
    sku.set_image_path(r.image_path);
    sku.set_old_revision(Hex(r.sku.cpu.current_revision));
    sku.set_new_revision(Hex(r.new_revision));
    sku.set_match(r.match);
    sku.set_min_rev(r.min_rev);
    if (r.window_staged) sku.set_window_staged_us(ProtoMicros(*r.window_staged));
    if (r.window_unstaged) sku.set_window_unstaged_us(ProtoMicros(*r.window_unstaged));
    if (r.sku.deadline) sku.set_deadline_us(ProtoMicros(*r.sku.deadline));
    sku.set_note(r.note);
    sku.set_ok(r.ok());
    for (const std::string& f : r.failures) sku.add_failures(f);
  }
  for (const InvalidImage& bad : report.invalid) {
    v1::InvalidImage& i = *out.add_invalid_images();
    i.set_image(bad.Where());
    i.set_error(bad.error);
  }
  return ProtoJson(out);
}

}  // namespace ucode::rehearsal
