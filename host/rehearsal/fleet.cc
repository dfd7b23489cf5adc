#include "host/rehearsal/fleet.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "host/base/config_text.h"
#include "host/base/status_macros.h"
#include "host/microcode/microcode_image.h"
#include "host/platform/emulated_config.h"

namespace ucode::rehearsal {
namespace {

absl::StatusOr<uint32_t> ParseU32(absl::string_view field, absl::string_view text) {
  ASSIGN_OR_RETURN(uint64_t n, ParseConfigNumber(field, text));
  if (n > 0xffffffffu) {
    return absl::InvalidArgumentError(absl::StrFormat("%s '%s' does not fit 32 bits", field, text));
  }
  return static_cast<uint32_t>(n);
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

absl::Status CheckName(absl::string_view name) {
  if (name.size() > kMaxSkuNameLength) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SKU name longer than %d characters", kMaxSkuNameLength));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "SKU name '%s': only letters, digits, '.', '_' and '-'", absl::CHexEscape(name)));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseShape(absl::string_view text, FleetSku& sku) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, 'x');
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrFormat("shape '%s' is not PACKAGESxCORESxTHREADS", text));
  }
  int* fields[] = {&sku.packages, &sku.cores_per_package, &sku.threads_per_core};
  for (int i = 0; i < 3; ++i) {
    ASSIGN_OR_RETURN(uint64_t n, ParseConfigNumber("shape", parts[i]));
    if (n < 1 || n > kMaxSkuCpus) {
      return absl::InvalidArgumentError(absl::StrFormat("shape '%s': %d out of range", text, n));
    }
    *fields[i] = static_cast<int>(n);
  }
  const int64_t cpus = int64_t{sku.packages} * sku.cores_per_package * sku.threads_per_core;
  if (cpus > kMaxSkuCpus) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "shape '%s' has %d logical CPUs, above the rehearsal's %d", text, cpus, kMaxSkuCpus));
  }
  platform::EmulatedHostConfig shape;
  shape.packages = sku.packages;
  shape.cores_per_package = sku.cores_per_package;
  shape.threads_per_core = sku.threads_per_core;
  return platform::ValidateEmulatedHostConfig(shape);
}

absl::Status ParseOption(absl::string_view field, FleetSku& sku) {
  std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, absl::MaxSplits('=', 1));
  if (kv.first == "hosts" && !sku.hosts) {
    ASSIGN_OR_RETURN(uint64_t n, ParseConfigNumber("hosts", kv.second));
    if (n < 1 || n > kMaxHosts) {
      return absl::InvalidArgumentError(absl::StrFormat("hosts %d outside 1..%d", n, kMaxHosts));
    }
    sku.hosts = static_cast<int64_t>(n);
    return absl::OkStatus();
  }
  if (kv.first == "deadline" && !sku.deadline) {
    absl::Duration d;
    if (!absl::ParseDuration(kv.second, &d) || d <= absl::ZeroDuration() || d > kMaxDeadline) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "deadline '%s' is not a duration in (0, %s] (e.g. 50ms)", kv.second,
          absl::FormatDuration(kMaxDeadline)));
    }
    sku.deadline = d;
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "field '%s': expected hosts=N or deadline=DURATION, each at most once", field));
}

absl::StatusOr<FleetSku> ParseLine(absl::string_view line) {
  std::vector<absl::string_view> f = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (f.size() < 5 || f.size() > 7) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d fields; expected NAME SIGNATURE PLATFORM_ID REVISION PxCxT [hosts=N] "
        "[deadline=DURATION]",
        f.size()));
  }
  FleetSku sku;
  RETURN_IF_ERROR(CheckName(f[0]));
  sku.name = std::string(f[0]);
  ASSIGN_OR_RETURN(sku.cpu.signature, ParseU32("signature", f[1]));
  ASSIGN_OR_RETURN(sku.cpu.platform_id, ParseU32("platform_id", f[2]));
  if (sku.cpu.platform_id > 7) {
    return absl::InvalidArgumentError(
        absl::StrFormat("platform_id %u > 7 (MSR 0x17 bits 52:50)", sku.cpu.platform_id));
  }
  ASSIGN_OR_RETURN(sku.cpu.current_revision, ParseU32("revision", f[3]));
  RETURN_IF_ERROR(ParseShape(f[4], sku));
  for (size_t i = 5; i < f.size(); ++i) RETURN_IF_ERROR(ParseOption(f[i], sku));
  return sku;
}

}  // namespace

std::string FleetSku::Shape() const {
  return absl::StrFormat("%dx%dx%d", packages, cores_per_package, threads_per_core);
}

absl::StatusOr<std::vector<FleetSku>> ParseFleet(absl::string_view text) {
  std::vector<FleetSku> fleet;
  std::set<std::string> names;
  for (const auto& [line_no, line] : ContentLines(text)) {
    absl::StatusOr<FleetSku> sku = ParseLine(line);
    if (!sku.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fleet line %d: %s", line_no, sku.status().message()));
    }
    if (!names.insert(sku->name).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fleet line %d: SKU '%s' named twice", line_no, sku->name));
    }
    if (fleet.size() == kMaxSkus) {
      return absl::InvalidArgumentError(
          absl::StrFormat("fleet line %d: more than %d SKUs", line_no, kMaxSkus));
    }
    sku->line = line_no;
    fleet.push_back(*std::move(sku));
  }
  if (fleet.empty()) return absl::InvalidArgumentError("fleet: no SKU line");
  return fleet;
}

absl::StatusOr<std::vector<FleetSku>> LoadFleet(const std::string& path) {
  absl::StatusOr<std::vector<uint8_t>> bytes = microcode::ReadFileBytes(path, kMaxFleetBytes);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::vector<FleetSku>> fleet =
      ParseFleet(absl::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
  if (!fleet.ok()) {
    return absl::Status(fleet.status().code(), absl::StrCat(path, ": ", fleet.status().message()));
  }
  return fleet;
}

}  // namespace ucode::rehearsal
