#include "host/rehearsal/report.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "host/base/json_writer.h"

namespace ucode::rehearsal {
namespace {

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
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      // The last column is not padded, so lines carry no trailing blanks.
      absl::StrAppend(&line, i + 1 == row.size() ? row[i] : absl::StrFormat("%-*s  ", width[i], row[i]));
    }
    absl::StrAppend(&out, line, "\n");
  }
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
  JsonWriter w;
  w.BeginObject().Flag("ok", report.ok()).Str("model", report.model);
  w.Key("skus").BeginArray();
  for (const SkuResult& r : report.skus) {
    w.BeginObject().Str("sku", r.sku.name).Num("line", r.sku.line);
    w.Str("signature", Hex(r.sku.cpu.signature)).Num("platform_id", r.sku.cpu.platform_id);
    w.Str("shape", r.sku.Shape());
    w.Key("hosts");
    r.sku.hosts ? w.Int(*r.sku.hosts) : w.Null();
    w.Str("image", r.image).Str("image_path", r.image_path);
    w.Str("old_revision", Hex(r.sku.cpu.current_revision)).Str("new_revision", Hex(r.new_revision));
    w.Str("match", r.match).Str("min_rev", r.min_rev);
    for (const auto& [key, d] : {std::pair{"window_staged_us", r.window_staged},
                                 std::pair{"window_unstaged_us", r.window_unstaged},
                                 std::pair{"deadline_us", r.sku.deadline}}) {
      w.Key(key);
      d ? w.Int(absl::ToInt64Microseconds(*d)) : w.Null();
    }
    w.Str("note", r.note).Flag("ok", r.ok());
    w.Key("failures").BeginArray();
    for (const std::string& f : r.failures) w.String(f);
    w.EndArray().EndObject();
  }
  w.EndArray();
  w.Key("invalid_images").BeginArray();
  for (const InvalidImage& bad : report.invalid) {
    w.BeginObject().Str("image", bad.Where()).Str("error", bad.error).EndObject();
  }
  w.EndArray().EndObject();
  return w.str();
}

}  // namespace ucode::rehearsal
