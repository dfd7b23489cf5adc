#include "vmm/rendezvous/bench_points.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ucode::rendezvous {

using bench::Ratio;

void ApplyFloor(const BareVcpuFloor& floor, int cores, Point& p) {
  const double scale = std::max(1.0, double(p.vms * p.vcpus) / cores);
  p.kick_floor_us = floor.kick_to_parked_us * scale;
  p.release_floor_us = floor.release_to_reentry_us * scale;
  p.progress_floor_us = floor.release_to_progress_us * scale;
  p.park_ratio = Ratio(p.park_us, p.kick_floor_us);
  p.release_ratio = Ratio(p.release_us, p.release_floor_us);
  p.overhead_ratio = Ratio(p.overhead_us, p.kick_floor_us + p.release_floor_us);
  p.gap_ratio = Ratio(p.blackout_med_us, p.kick_floor_us + p.progress_floor_us);
  p.gap_to_baseline = Ratio(p.blackout_max_us, p.baseline_max_us);
}


void PrintTable(const std::vector<Point>& points, const BareVcpuFloor& floor, int cores,
                int rounds, const std::string& program) {
  std::printf("rendezvous on %d cores, %d rounds per shape (medians), guest '%s'\n", cores,
              rounds, program.c_str());
  std::printf("floor (one bare vCPU, this run): kick -> parked %.1f us, release -> "
              "re-entering KVM_RUN %.1f us, release -> guest progress %.1f us\n",
              floor.kick_to_parked_us, floor.release_to_reentry_us, floor.release_to_progress_us);
  std::printf("%-6s %5s %8s %8s %8s %9s %9s %9s %9s %7s %7s %7s %7s %8s %9s %9s %4s\n", "VMsxV",
              "vCPUs", "park_us", "rel_us", "ovh_us", "gap_med", "gap_max", "base_med",
              "base_max", "park/fl", "rel/fl", "ovh/fl", "gap/fl", "gap/base", "host_ovh",
              "window_us", "fail");
  for (const Point& p : points) {
    std::printf(
        "%-6s %5d %8.1f %8.1f %8.1f %9.1f %9.1f %9.1f %9.1f %7.2f %7.2f %7.2f %7.2f %8.2f "
        "%9.1f %9.1f %4d\n",
        absl::StrCat(p.vms, "x", p.vcpus).c_str(), p.vms * p.vcpus, p.park_us, p.release_us,
        p.overhead_us, p.blackout_med_us, p.blackout_max_us, p.baseline_med_us,
        p.baseline_max_us, p.park_ratio, p.release_ratio, p.overhead_ratio, p.gap_ratio,
        p.gap_to_baseline, p.host_overhead_us, p.host_window_us, p.failures);
  }
}

std::string PointJson(const Point& p) {
  return absl::StrFormat(
      "{\"vms\":%d,\"vcpus_per_vm\":%d,\"park_all_us\":%.1f,\"release_with_view_us\":%.1f,"
      "\"overhead_us\":%.1f,\"kick_floor_us\":%.1f,\"release_floor_us\":%.1f,"
      "\"progress_floor_us\":%.1f,"
      "\"park_to_floor\":%.2f,\"release_to_floor\":%.2f,\"overhead_to_floor\":%.2f,"
      "\"guest_gap_to_floor\":%.2f,\"guest_gap_median_us\":%.1f,\"guest_gap_max_us\":%.1f,"
      "\"baseline_gap_median_us\":%.1f,\"baseline_gap_max_us\":%.1f,"
      "\"guest_gap_max_to_baseline_max\":%.2f,\"host_load_overhead_us\":%.1f,"
      "\"host_load_window_us\":%.1f,\"host_load_park_all_us\":%.1f,"
      "\"host_load_release_with_view_us\":%.1f,\"host_load_outside_window_us\":%.1f,"
      "\"failures\":%d}",
      p.vms, p.vcpus, p.park_us, p.release_us, p.overhead_us, p.kick_floor_us,
      p.release_floor_us, p.progress_floor_us, p.park_ratio, p.release_ratio,
      p.overhead_ratio, p.gap_ratio,
      p.blackout_med_us, p.blackout_max_us, p.baseline_med_us, p.baseline_max_us,
      p.gap_to_baseline, p.host_overhead_us, p.host_window_us, p.host_park_us,
      p.host_release_us, p.host_outside_us, p.failures);
}

}  // namespace ucode::rendezvous
