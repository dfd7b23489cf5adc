// bench_staging: the staging driver's throughput and overhead, and the host-load critical
// path staged vs unstaged, on the emulated host with the real 06-8f-08 and 06-ad-01 images.
// Prints a table and one JSON line. Run: bazel run -c opt //host/staging:bench_staging
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/late_load/host_update.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"
#include "host/platform/emulated_platform.h"
#include "host/staging/staging_driver.h"

namespace ucode {
namespace {

constexpr int kRuns = 5;

platform::EmulatedHostConfig HostFor(const microcode::MicrocodeHeader& h, int packages, int cores,
                                     staging::MailboxBehavior mailbox = {}) {
  platform::EmulatedHostConfig c;
  c.packages = packages;
  c.cores_per_package = cores;
  c.signature = h.signature;
  c.platform_id = static_cast<uint32_t>(__builtin_ctz(h.platform_flags));
  c.revision = std::max(h.min_req_revision, h.revision - 1);
  c.mailbox = mailbox;
  return c;
}

struct StageRun {
  absl::Duration elapsed;
  uint64_t accesses = 0;  // summed over packages
};

StageRun Stage(const platform::EmulatedHostConfig& config, absl::Span<const uint8_t> image,
               bool parallel) {
  auto host = platform::EmulatedPlatform::Create(config);
  staging::StagingOptions options;
  options.parallel = parallel;
  staging::StagingReport report = staging::StageAllPackages(**host, image, options);
  if (!report.all_staged()) std::fprintf(stderr, "bench: %s\n", report.Summary().c_str());
  StageRun run{report.elapsed};
  for (int p = 0; p < config.packages; ++p) run.accesses += (*host)->mailbox(p).stats().register_accesses;
  return run;
}

// Median of kRuns runs.
StageRun Median(const platform::EmulatedHostConfig& config, absl::Span<const uint8_t> image,
                bool parallel) {
  std::vector<StageRun> runs;
  for (int i = 0; i < kRuns; ++i) runs.push_back(Stage(config, image, parallel));
  std::sort(runs.begin(), runs.end(),
            [](const StageRun& a, const StageRun& b) { return a.elapsed < b.elapsed; });
  return runs[kRuns / 2];
}

double MBps(size_t bytes, absl::Duration d) {
  return static_cast<double>(bytes) / 1e6 / absl::ToDoubleSeconds(d);
}

int Main() {
  absl::StatusOr<std::string> dir = microcode::FindReleaseDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "bench_staging: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  std::vector<std::string> json;
  std::printf("%-9s %8s | %9s %9s %9s %7s | %9s %9s %7s | %10s %10s %6s %9s\n", "file", "KiB",
              "1pkg MB/s", "4par ms", "4seq ms", "par/seq", "100ns ms", "floor ms", "driver",
              "unstaged", "staged", "ratio", "window");
  for (const char* name : {"06-8f-08", "06-ad-01"}) {
    absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(*dir + "/" + name);
    if (!file.ok()) continue;
    auto images = microcode::ParseBundleStrict(*file);
    if (!images.ok()) continue;
    const microcode::MicrocodeImage& image = images->front();
    const size_t size = image.total_size();

    const StageRun one = Median(HostFor(image.header, 1, 1), image.bytes, true);
    const StageRun par = Median(HostFor(image.header, 4, 1), image.bytes, true);
    const StageRun seq = Median(HostFor(image.header, 4, 1), image.bytes, false);
    const absl::Duration cost = absl::Nanoseconds(100);
    const StageRun slow = Median(HostFor(image.header, 1, 1, {.access_cost = cost}), image.bytes, true);
    const absl::Duration floor = cost * static_cast<double>(slow.accesses);
    const double driver_share = 1.0 - absl::FDivDuration(floor, slow.elapsed);

    // Host load on 2 x 8 x 2: the model's critical path, and one real rendezvous staged.
    platform::EmulatedHostConfig big = HostFor(image.header, 2, 8);
    const absl::Duration unstaged = big.activation.Cost(size, false);
    const absl::Duration staged = big.activation.Cost(size, true);
    auto host = platform::EmulatedPlatform::Create(big);
    auto report = late_load::RunHostUpdate(**host, *file, {});
    const absl::Duration window =
        report.ok() ? report->load.load.activation_window : absl::ZeroDuration();

    std::printf("%-9s %8zu | %9.1f %9.2f %9.2f %7.2f | %9.2f %9.2f %6.1f%% | %8.2fms %8.2fms %6.2f %7.2fms\n",
                name, size / 1024, MBps(size, one.elapsed), absl::ToDoubleMilliseconds(par.elapsed),
                absl::ToDoubleMilliseconds(seq.elapsed), absl::FDivDuration(par.elapsed, seq.elapsed),
                absl::ToDoubleMilliseconds(slow.elapsed), absl::ToDoubleMilliseconds(floor),
                100 * driver_share, absl::ToDoubleMilliseconds(unstaged),
                absl::ToDoubleMilliseconds(staged), absl::FDivDuration(staged, unstaged),
                absl::ToDoubleMilliseconds(window));
    json.push_back(absl::StrFormat(
        "{\"file\":\"%s\",\"bytes\":%d,\"mbps_1pkg\":%.1f,\"ms_4pkg_parallel\":%.3f,"
        "\"ms_4pkg_sequential\":%.3f,\"parallel_over_sequential\":%.3f,\"ms_100ns_model\":%.3f,"
        "\"ms_100ns_floor\":%.3f,\"driver_share\":%.4f,\"accesses_per_dword\":%.3f,"
        "\"load_unstaged_ms\":%.3f,\"load_staged_ms\":%.3f,\"load_window_ms\":%.3f}",
        name, size, MBps(size, one.elapsed), absl::ToDoubleMilliseconds(par.elapsed),
        absl::ToDoubleMilliseconds(seq.elapsed), absl::FDivDuration(par.elapsed, seq.elapsed),
        absl::ToDoubleMilliseconds(slow.elapsed), absl::ToDoubleMilliseconds(floor), driver_share,
        static_cast<double>(slow.accesses) / (size / 4.0), absl::ToDoubleMilliseconds(unstaged),
        absl::ToDoubleMilliseconds(staged), absl::ToDoubleMilliseconds(window)));
  }
  std::printf("%s (host load on 2x8x2; 'driver' = share of the 100 ns/access run above the "
              "model's floor)\n",
              platform::ActivationModel{}.Describe().c_str());
  std::printf("{\"bench\":\"staging\",\"runs\":%d,\"results\":[%s]}\n", kRuns,
              absl::StrJoin(json, ",").c_str());
  return 0;
}

}  // namespace
}  // namespace ucode

int main() { return ucode::Main(); }
