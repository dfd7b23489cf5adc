// bench_park_linux: how long an update parks VMs on a Linux host, strict vs fast mode.
//
// The whole product path (RunUpdate over LinuxPlatform) runs against the fake sysfs/dev
// tree, whose kernel side (host/platform/fake_linux_kernel.h) takes a configurable time
// per MB for each phase of the reload write: firmware request, the kernel's own staging
// (6.19+ on a staging CPU), stop_machine. The VMs are a ClockGuestGroup: parking and
// releasing cost nothing, so what is measured is what ucode puts inside the park.
//
// Per image (first image of the release file), kernel and mode it prints medians of:
//   park_ms      the window ucode holds the VMs (strict: across the reload write; fast:
//                the guest-view switch after it);
//   reload_ms    the reload write;
//   stop_ms      the kernel's stop_machine, which holds every CPU and so every running
//                vCPU in either mode;
//   blackout_ms  the longest single stretch a vCPU cannot run: strict: the park (which
//                contains stop_machine); fast: max(stop_machine, park).
//
//   bazel run -c opt //vmm/orchestrator:bench_park_linux -- [--runs=5]
//       [--firmware_ms_per_mb=2] [--staging_ms_per_mb=256] [--stop_fixed_us=500]
//       [--stop_us_per_kib=17] [--stop_staged_us_per_kib=9.8]
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"
#include "host/platform/fake_linux_kernel.h"
#include "proto/json.h"
#include "vmm/orchestrator/clock_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/rendezvous/bench_stats.h"

ABSL_FLAG(int, runs, 5, "runs per row (medians)");
ABSL_FLAG(double, firmware_ms_per_mb, 2, "kernel firmware request + parse, ms per MB");
ABSL_FLAG(double, staging_ms_per_mb, 256,
          "kernel staging, ms per MB (msleep(1) per 4 KiB page: 256)");
ABSL_FLAG(double, stop_fixed_us, 500, "stop_machine fixed cost, us");
ABSL_FLAG(double, stop_us_per_kib, 17, "WRMSR 0x79 per KiB, unstaged (6.18), us");
ABSL_FLAG(double, stop_staged_us_per_kib, 9.8, "WRMSR 0x79 per KiB, staged (6.19), us");

namespace ucode::orchestrator {
namespace {

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }

using bench::Median;

struct Row {
  std::string image;
  size_t bytes = 0;
  std::string kernel;
  std::string mode;
  double park_ms = 0, reload_ms = 0, stop_ms = 0, blackout_ms = 0, staged_after_ms = 0;
  std::string error;
};

Row Measure(const std::string& name, const std::vector<uint8_t>& file,
            const microcode::MicrocodeImage& image, bool staging_kernel, UpdateMode mode,
            const std::string& scratch) {
  Row row{.image = name,
          .bytes = image.total_size(),
          .kernel = staging_kernel ? "6.19 staging" : "6.18",
          .mode = UpdateModeName(mode)};
  platform::FakeKernelConfig config;
  config.release = staging_kernel ? "6.19.0-bench" : "6.18.0-bench";
  config.cpu_staging = true;
  config.signature = image.header.signature;
  config.platform_id = static_cast<uint32_t>(__builtin_ctz(image.header.platform_flags));
  config.revision = image.header.min_req_revision != 0 ? image.header.min_req_revision
                                                       : image.revision() - 1;
  config.offline = {};
  const double per_kib =
      staging_kernel ? absl::GetFlag(FLAGS_stop_staged_us_per_kib) : absl::GetFlag(FLAGS_stop_us_per_kib);
  config.timing = {
      .firmware_per_mb = absl::Microseconds(1000 * absl::GetFlag(FLAGS_firmware_ms_per_mb)),
      .staging_per_mb = absl::Microseconds(1000 * absl::GetFlag(FLAGS_staging_ms_per_mb)),
      .stop_machine_fixed = absl::Microseconds(absl::GetFlag(FLAGS_stop_fixed_us)),
      .stop_machine_per_mb = absl::Microseconds(per_kib * 1024)};
  std::vector<double> park, reload, stop, blackout, staged;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    const std::string root = absl::StrCat(scratch, "/", name, "-", row.kernel.substr(0, 4), "-",
                                          row.mode, "-", run);
    auto kernel = platform::FakeLinuxKernel::Create(root, config);
    if (!kernel.ok()) {
      row.error = std::string(kernel.status().message());
      return row;
    }
    auto linux = platform::LinuxPlatform::Create((*kernel)->PlatformOptions());
    if (!linux.ok()) {
      row.error = std::string(linux.status().message());
      return row;
    }
    ClockGuestGroup group;
    GuestGroup* groups[] = {&group};
    UpdateOptions options;
    options.mode = mode;
    options.park_deadline = absl::Seconds(5);
    UpdateReport r = RunUpdate(**linux, file, groups, options);
    if (!r.status.ok() || !r.host) {
      row.error = std::string(r.status.message());
      return row;
    }
    const absl::Duration stop_machine = (*kernel)->last_stop_machine();
    park.push_back(Ms(r.held));
    reload.push_back(Ms(r.host->load.activation_window));
    stop.push_back(Ms(stop_machine));
    blackout.push_back(mode == v1::UPDATE_MODE_STRICT ? Ms(r.held)
                                                   : std::max(Ms(stop_machine), Ms(r.held)));
    const auto& rl = r.host->load.reload;
    staged.push_back(rl && rl->staged_after ? Ms(*rl->staged_after) : 0);
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  row.park_ms = Median(park);
  row.reload_ms = Median(reload);
  row.stop_ms = Median(stop);
  row.blackout_ms = Median(blackout);
  row.staged_after_ms = Median(staged);
  return row;
}

int Main() {
  absl::StatusOr<std::string> dir = microcode::FindReleaseDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "bench_park_linux: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  std::string scratch = "/tmp/bench_park_linux.XXXXXX";
  if (mkdtemp(scratch.data()) == nullptr) {
    std::perror("bench_park_linux: mkdtemp");
    return 1;
  }
  std::vector<Row> rows;
  for (const char* name : {"06-8f-08", "06-ad-01"}) {
    absl::StatusOr<std::vector<uint8_t>> file =
        microcode::ReadFileBytes(absl::StrCat(*dir, "/", name));
    if (!file.ok()) {
      std::fprintf(stderr, "bench_park_linux: %s\n", std::string(file.status().message()).c_str());
      return 1;
    }
    // The file's first image alone, so the selection is unambiguous.
    absl::StatusOr<microcode::MicrocodeImage> image = microcode::ParseImage(*file);
    if (!image.ok()) return 1;
    std::vector<uint8_t> one(image->bytes.begin(), image->bytes.end());
    for (bool staging_kernel : {false, true}) {
      for (UpdateMode mode : {v1::UPDATE_MODE_STRICT, v1::UPDATE_MODE_FAST}) {
        rows.push_back(Measure(name, one, *image, staging_kernel, mode, scratch));
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(scratch, ec);

  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("bench_park_linux: %d runs per row (medians); load average %.2f; model: firmware "
              "%.1f ms/MB, kernel staging %.1f ms/MB, stop_machine %.0f us + %.1f (6.18) / %.1f "
              "(6.19 staged) us/KiB\n",
              absl::GetFlag(FLAGS_runs), load[0], absl::GetFlag(FLAGS_firmware_ms_per_mb),
              absl::GetFlag(FLAGS_staging_ms_per_mb), absl::GetFlag(FLAGS_stop_fixed_us),
              absl::GetFlag(FLAGS_stop_us_per_kib), absl::GetFlag(FLAGS_stop_staged_us_per_kib));
  std::printf("%-9s %8s %-13s %-6s %10s %10s %10s %10s %12s  %s\n", "image", "KiB", "kernel",
              "mode", "park_ms", "reload_ms", "stop_ms", "blackout", "staged_@_ms", "error");
  google::protobuf::Struct json;
  StructField(json, "bench").set_string_value("park_linux");
  StructField(json, "runs").set_number_value(absl::GetFlag(FLAGS_runs));
  google::protobuf::ListValue& json_rows = *StructField(json, "rows").mutable_list_value();
  for (const Row& r : rows) {
    std::printf("%-9s %8zu %-13s %-6s %10.2f %10.2f %10.2f %10.2f %12.2f  %s\n", r.image.c_str(),
                r.bytes / 1024, r.kernel.c_str(), r.mode.c_str(), r.park_ms, r.reload_ms,
                r.stop_ms, r.blackout_ms, r.staged_after_ms, r.error.c_str());
    google::protobuf::Struct& o = *json_rows.add_values()->mutable_struct_value();
    StructField(o, "image").set_string_value(r.image);
    StructField(o, "bytes").set_number_value(static_cast<double>(r.bytes));
    StructField(o, "kernel").set_string_value(r.kernel);
    StructField(o, "mode").set_string_value(r.mode);
    StructField(o, "park_us").set_number_value(std::trunc(r.park_ms * 1000));
    StructField(o, "reload_us").set_number_value(std::trunc(r.reload_ms * 1000));
    StructField(o, "stop_machine_us").set_number_value(std::trunc(r.stop_ms * 1000));
    StructField(o, "blackout_us").set_number_value(std::trunc(r.blackout_ms * 1000));
    StructField(o, "error").set_string_value(r.error);
  }
  std::printf("%s\n", ProtoJson(json).c_str());
  for (const Row& r : rows) {
    if (!r.error.empty()) return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ucode::orchestrator

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ucode::orchestrator::Main();
}
