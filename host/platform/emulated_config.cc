#include "host/platform/emulated_config.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "host/base/config_text.h"
#include "host/base/status_macros.h"

namespace ucode::platform {
namespace {

constexpr int kMaxPackages = 64;
constexpr int kMaxCoresPerPackage = 512;
constexpr int kMaxThreadsPerCore = 8;
// One emulated stopper thread per logical CPU: 4096 keep `ucodectl load` near a second on
// a 2-core machine (64x512x8 = 262144 took minutes). Real hosts today have under 2000.
constexpr int kMaxCpus = 4096;
constexpr uint64_t kMaxInt = 0x7fffffff;
constexpr char kKeys[] =
    "packages, cores, threads, offline, signature, platform_id, revision, staging, "
    "arch_capabilities, "
    "mailbox_base, mailbox_fault, mailbox_fault_at, mailbox_fault_count, mailbox_delay_us, "
    "mailbox_access_ns, activation_fixed_us, activation_unstaged_us_per_kib, "
    "activation_staged_us_per_kib, failing_cpus";
constexpr uint64_t kMaxU32 = 0xffffffff;
constexpr uint64_t kMaxDelayUs = 60'000'000;  // a minute: far beyond any modelled delay

// Messages name the key (one of ours) and the allowed range, never the value: the text may
// come from a file the caller could not read itself (`ucodectl --host-config` under sudo).
absl::StatusOr<uint64_t> ParseNumber(absl::string_view key, absl::string_view value,
                                     uint64_t max) {
  absl::StatusOr<uint64_t> n = ParseConfigNumber(key, value);
  if (!n.ok()) return absl::InvalidArgumentError(absl::StrFormat("%s: not a number", key));
  if (*n > max) {
    return absl::OutOfRangeError(absl::StrFormat("%s: above the maximum 0x%x", key, max));
  }
  return *n;
}

// A non-negative duration in microseconds with a fraction ("9.8" is 9800 ns): the model's
// defaults are not whole microseconds.
absl::StatusOr<absl::Duration> ParseMicroseconds(absl::string_view key, absl::string_view value) {
  double us = 0;
  if (!absl::SimpleAtod(value, &us) || !std::isfinite(us) || us < 0 || us > kMaxDelayUs) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: not a duration in microseconds (0 to %d, fractions allowed)", key, kMaxDelayUs));
  }
  return absl::Nanoseconds(std::llround(us * 1000.0));
}

absl::StatusOr<std::set<int>> ParseList(absl::string_view key, absl::string_view value) {
  std::set<int> out;
  for (absl::string_view item : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    ASSIGN_OR_RETURN(uint64_t n, ParseNumber(key, absl::StripAsciiWhitespace(item), kMaxCpus));
    out.insert(static_cast<int>(n));
  }
  return out;
}

// The largest value each numeric key takes.
uint64_t MaxOf(absl::string_view key) {
  if (key == "signature" || key == "revision" || key == "platform_id") return kMaxU32;
  if (key == "mailbox_base") return ~uint64_t{0};
  if (key == "mailbox_access_ns") return kMaxDelayUs;
  return kMaxInt;
}

absl::Status Apply(EmulatedHostConfig& c, absl::string_view key, absl::string_view value) {
  if (key == "offline") {
    ASSIGN_OR_RETURN(c.offline_cpus, ParseList(key, value));
    return absl::OkStatus();
  }
  if (key == "failing_cpus") {
    ASSIGN_OR_RETURN(c.failing_cpus, ParseList(key, value));
    return absl::OkStatus();
  }
  if (key == "staging" || key == "arch_capabilities") {
    bool& flag = key == "staging" ? c.staging : c.arch_capabilities;
    if (value == "true" || value == "1") flag = true;
    else if (value == "false" || value == "0") flag = false;
    else return absl::InvalidArgumentError(absl::StrFormat("%s: not true, false, 1 or 0", key));
    return absl::OkStatus();
  }
  if (key == "mailbox_fault") {
    absl::StatusOr<MailboxFault> fault = ParseMailboxFault(value);
    if (!fault.ok()) return absl::InvalidArgumentError("mailbox_fault: not a fault name");
    c.mailbox.fault = *fault;
    return absl::OkStatus();
  }
  if (absl::EndsWith(key, "_us") || absl::EndsWith(key, "_us_per_kib")) {
    ASSIGN_OR_RETURN(absl::Duration d, ParseMicroseconds(key, value));
    if (key == "mailbox_delay_us") c.mailbox.transaction_delay = d;
    else if (key == "activation_fixed_us") c.activation.fixed = d;
    else if (key == "activation_unstaged_us_per_kib") c.activation.per_kib_unstaged = d;
    else if (key == "activation_staged_us_per_kib") c.activation.per_kib_staged = d;
    else return absl::InvalidArgumentError(absl::StrCat("unknown key; keys: ", kKeys));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(uint64_t n, ParseNumber(key, value, MaxOf(key)));
  const int i = static_cast<int>(n);
  if (key == "packages") c.packages = i;
  else if (key == "cores") c.cores_per_package = i;
  else if (key == "threads") c.threads_per_core = i;
  else if (key == "signature") c.signature = static_cast<uint32_t>(n);
  else if (key == "platform_id") c.platform_id = static_cast<uint32_t>(n);
  else if (key == "revision") c.revision = static_cast<uint32_t>(n);
  else if (key == "mailbox_base") c.mailbox_base = n;
  else if (key == "mailbox_fault_at") c.mailbox.at = i;
  else if (key == "mailbox_fault_count") c.mailbox.count = i;
  else if (key == "mailbox_access_ns") c.mailbox.access_cost = absl::Nanoseconds(n);
  else return absl::InvalidArgumentError(absl::StrCat("unknown key; keys: ", kKeys));
  return absl::OkStatus();
}

}  // namespace

absl::Duration ActivationModel::Cost(size_t image_bytes, bool staged) const {
  const double kib = static_cast<double>(image_bytes) / 1024.0;
  return fixed + (staged ? per_kib_staged : per_kib_unstaged) * kib;
}

std::string ActivationModel::Describe() const {
  return absl::StrFormat("activation model: fixed %s + %s/KiB unstaged, %s/KiB staged",
                         absl::FormatDuration(fixed), absl::FormatDuration(per_kib_unstaged),
                         absl::FormatDuration(per_kib_staged));
}

EmulatedHostConfig DemoHostConfig() { return EmulatedHostConfig{}; }

absl::Status ValidateEmulatedHostConfig(const EmulatedHostConfig& c) {
  if (c.packages < 1 || c.packages > kMaxPackages || c.cores_per_package < 1 ||
      c.cores_per_package > kMaxCoresPerPackage || c.threads_per_core < 1 ||
      c.threads_per_core > kMaxThreadsPerCore) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "emulated host shape %dx%dx%d outside 1..%d packages, 1..%d cores, 1..%d threads",
        c.packages, c.cores_per_package, c.threads_per_core, kMaxPackages, kMaxCoresPerPackage,
        kMaxThreadsPerCore));
  }
  if (c.cpu_count() > kMaxCpus) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "emulated host shape %dx%dx%d has %d logical CPUs, over the limit of %d",
        c.packages, c.cores_per_package, c.threads_per_core, c.cpu_count(), kMaxCpus));
  }
  if (c.platform_id > 7) {
    return absl::InvalidArgumentError(absl::StrFormat("platform_id %u > 7", c.platform_id));
  }
  for (int cpu : c.offline_cpus) {
    if (cpu < 0 || cpu >= c.cpu_count()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("offline cpu %d outside 0..%d", cpu, c.cpu_count() - 1));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<EmulatedHostConfig> ParseEmulatedHostConfig(absl::string_view text) {
  EmulatedHostConfig config = DemoHostConfig();
  RETURN_IF_ERROR(ApplyEmulatedHostConfig(text, "host config", config));
  RETURN_IF_ERROR(ValidateEmulatedHostConfig(config));
  return config;
}

absl::Status ApplyEmulatedHostConfig(absl::string_view text, absl::string_view what,
                                     EmulatedHostConfig& config) {
  for (const auto& [line_no, line] : ContentLines(text)) {
    const size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s line %d: expected 'key = value'", what, line_no));
    }
    absl::Status s = Apply(config, absl::StripAsciiWhitespace(line.substr(0, eq)),
                           absl::StripAsciiWhitespace(line.substr(eq + 1)));
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s line %d: %s", what, line_no, s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace ucode::platform
