#include "host/rehearsal/rehearsal.h"

#include <memory>
#include <set>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "host/base/status_macros.h"
#include "host/microcode/selection.h"
#include "host/platform/emulated_platform.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode::rehearsal {
namespace {

namespace mc = ::ucode::microcode;

// The rehearsal models activation; it does not test the rendezvous against this machine's
// scheduler. Waits far above the kernel's one second keep a loaded CI machine from turning
// a slow thread wake-up into a failed SKU.
constexpr absl::Duration kRendezvousTimeout = absl::Seconds(60);

// Intel's revisions compare signed (selection.h, the kernel's intel.c).
bool Older(uint32_t a, uint32_t b) { return static_cast<int32_t>(a) < static_cast<int32_t>(b); }

platform::EmulatedHostConfig HostFor(const FleetSku& sku) {
  platform::EmulatedHostConfig config = platform::DemoHostConfig();
  config.packages = sku.packages;
  config.cores_per_package = sku.cores_per_package;
  config.threads_per_core = sku.threads_per_core;
  config.signature = sku.cpu.signature;
  config.platform_id = sku.cpu.platform_id;
  config.revision = sku.cpu.current_revision;
  config.staging = true;
  return config;
}

// Runs the host-only update of `image` on an emulated host shaped like `sku` and returns
// the model's critical path: the longest WRMSR 0x79 of any core, which is the activation
// window of a host whose primaries apply in parallel (the kernel's load_late_stop_cpus()).
absl::StatusOr<absl::Duration> ModelWindow(const mc::MicrocodeImage& image, const FleetSku& sku,
                                           bool stage, std::string& note) {
  ASSIGN_OR_RETURN(std::unique_ptr<platform::EmulatedPlatform> host,
                   platform::EmulatedPlatform::Create(HostFor(sku)));
  orchestrator::UpdateOptions options;
  options.operation = "rehearsal";
  options.policy = mc::MinRevPolicy::kIgnore;  // the min-rev verdict is reported on its own
  options.stage = stage;
  options.late_load.arrival_timeout = kRendezvousTimeout;
  options.late_load.sibling_timeout = kRendezvousTimeout;
  orchestrator::UpdateReport report = orchestrator::RunUpdate(
      *host, std::vector<uint8_t>(image.bytes.begin(), image.bytes.end()), {}, options);
  RETURN_IF_ERROR(report.status);
  if (report.staging && !report.staging->all_staged()) {
    note = absl::StrCat("staging: ", report.staging->Summary());
  }
  return report.host->load.modelled_critical_path;
}

void Model(const mc::MicrocodeImage& image, SkuResult& r) {
  for (bool stage : {true, false}) {
    absl::StatusOr<absl::Duration> window = ModelWindow(image, r.sku, stage, r.note);
    if (!window.ok()) {
      r.failures.push_back(absl::StrFormat("emulated load (%s): %s",
                                           stage ? "staged" : "unstaged", window.status().message()));
      continue;
    }
    (stage ? r.window_staged : r.window_unstaged) = *window;
  }
  // Staging is opportunistic (a failure falls back to the unstaged load), so the unstaged
  // window is the one the deadline must hold.
  if (r.sku.deadline && r.window_unstaged && *r.window_unstaged > *r.sku.deadline) {
    r.failures.push_back(absl::StrFormat(
        "deadline: unstaged activation window %s exceeds the VM dead-man deadline %s "
        "(staged %s; staging may fall back to unstaged)",
        absl::FormatDuration(*r.window_unstaged), absl::FormatDuration(*r.sku.deadline),
        r.window_staged ? absl::FormatDuration(*r.window_staged) : "-"));
  }
}

// No image newer than the running revision: up to date, not covered, or a downgrade.
void NoUpdate(const Candidates& c, SkuResult& r) {
  const mc::CpuIdentity& cpu = r.sku.cpu;
  std::optional<size_t> newest;
  for (size_t i = 0; i < c.images.size(); ++i) {
    if (mc::MatchImage(c.images[i], cpu) == mc::SignatureMatch::kNone) continue;
    if (!newest || Older(c.images[*newest].revision(), c.images[i].revision())) newest = i;
  }
  r.min_rev = "-";
  if (!newest) {
    r.note = c.by_file_name ? absl::StrCat("no image for this SKU in ",
                                           mc::FirmwareFileName(cpu.signature))
                            : "no image matches this SKU";
    return;
  }
  const std::string where = c.sources[*newest]->Where();
  const uint32_t rev = c.images[*newest].revision();
  if (Older(rev, cpu.current_revision)) {
    r.failures.push_back(absl::StrFormat(
        "downgrade: the release's newest image for this SKU, %s, is revision 0x%x, older than "
        "the running 0x%x",
        where, rev, cpu.current_revision));
  } else {
    r.note = absl::StrFormat("up to date: %s is the running revision", where);
  }
}

void CheckBaseline(const ImageSet& baseline, SkuResult& r) {
  Candidates b = baseline.CandidatesFor(r.sku.cpu.signature);
  mc::Selection had = mc::SelectImage(b.images, r.sku.cpu, mc::MinRevPolicy::kIgnore);
  if (had.image == nullptr || r.has_update()) return;
  r.failures.push_back(absl::StrFormat(
      "lost update: the baseline release updates this SKU to 0x%x (%s), this release has "
      "nothing newer than the running 0x%x",
      had.image->revision(), b.sources[had.image - b.images.data()]->Where(),
      r.sku.cpu.current_revision));
}

SkuResult RehearseSku(const ImageSet& release, const ImageSet* baseline, const FleetSku& sku) {
  SkuResult r;
  r.sku = sku;
  r.new_revision = sku.cpu.current_revision;
  const std::string file = mc::FirmwareFileName(sku.cpu.signature);
  for (const InvalidImage& bad : release.invalid()) {
    if (bad.file == file || (bad.signature != 0 && bad.signature == sku.cpu.signature)) {
      r.failures.push_back(absl::StrFormat("validation: %s: %s", bad.Where(), bad.error));
    }
  }
  Candidates c = release.CandidatesFor(sku.cpu.signature);
  mc::Selection any = mc::SelectImage(c.images, sku.cpu, mc::MinRevPolicy::kIgnore);
  if (any.image == nullptr) {
    NoUpdate(c, r);
  } else {
    const size_t i = any.image - c.images.data();
    r.image = c.sources[i]->Where();
    r.image_path = c.sources[i]->path;
    r.new_revision = any.image->revision();
    r.match = mc::MatchImage(*any.image, sku.cpu) == mc::SignatureMatch::kPrimary ? "primary"
                                                                                  : "extended";
    mc::Selection safe = mc::SelectImage(c.images, sku.cpu, mc::MinRevPolicy::kEnforce);
    if (safe.image == any.image) {
      r.min_rev = absl::StrFormat("ok: min_rev 0x%x <= 0x%x", any.image->header.min_req_revision,
                                  sku.cpu.current_revision);
    } else {
      r.min_rev = "refused";
      r.failures.push_back(absl::StrFormat("min-rev: 0x%x -> 0x%x refused, %s",
                                           sku.cpu.current_revision, r.new_revision,
                                           safe.candidates[i].reason));
    }
    Model(*any.image, r);
  }
  if (baseline != nullptr) CheckBaseline(*baseline, r);
  return r;
}

}  // namespace

bool RehearsalReport::ok() const { return Failures().empty(); }

std::vector<std::string> RehearsalReport::Failures() const {
  std::vector<std::string> out;
  std::set<std::string> reported;
  for (const SkuResult& r : skus) {
    for (const std::string& f : r.failures) {
      out.push_back(absl::StrCat(r.sku.name, ": ", f));
      reported.insert(f);
    }
  }
  for (const InvalidImage& bad : invalid) {
    std::string f = absl::StrFormat("validation: %s: %s", bad.Where(), bad.error);
    if (!reported.count(f)) out.push_back(absl::StrCat("release: ", f));
  }
  return out;
}

absl::StatusOr<std::string> FindExpectedFailure(const RehearsalReport& report,
                                                absl::string_view text) {
  const std::vector<std::string> failures = report.Failures();
  for (const std::string& f : failures) {
    if (absl::StrContains(f, text)) return f;
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "expected a failure containing \"%s\", but %s", text,
      failures.empty() ? "the rehearsal passed" : "no failure above contains it"));
}

RehearsalReport Rehearse(const ImageSet& release, const ImageSet* baseline,
                         const std::vector<FleetSku>& fleet) {
  RehearsalReport report;
  report.invalid = release.invalid();
  report.model = platform::DemoHostConfig().activation.Describe();
  for (const FleetSku& sku : fleet) report.skus.push_back(RehearseSku(release, baseline, sku));
  return report;
}

}  // namespace ucode::rehearsal
