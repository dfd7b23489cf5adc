// bench_rendezvous's per-shape figures, their ratios to the bare-vCPU floor, and how they
// are printed (the table and the JSON line).
#ifndef UCODE_VMM_RENDEZVOUS_BENCH_POINTS_H_
#define UCODE_VMM_RENDEZVOUS_BENCH_POINTS_H_

#include <string>
#include <vector>

#include "vmm/rendezvous/bench_floor.h"
#include "vmm/rendezvous/bench_stats.h"

namespace ucode::rendezvous {

struct Point {
  int vms = 0, vcpus = 0;
  double park_us = 0, release_us = 0, overhead_us = 0;
  double blackout_med_us = 0, blackout_max_us = 0;  // guest-measured park-spanning gaps
  double baseline_med_us = 0, baseline_max_us = 0;  // guest-measured gaps with no hold
  // This shape's floor (the bare figures x max(1, vCPUs / cores)) and the ratios to it.
  double kick_floor_us = 0, release_floor_us = 0, progress_floor_us = 0;
  double park_ratio = 0, release_ratio = 0, overhead_ratio = 0, gap_ratio = 0;
  double gap_to_baseline = 0;  // blackout_max_us / baseline_max_us
  // With the emulated host late load as the activation.
  double host_overhead_us = 0, host_window_us = 0, host_park_us = 0, host_release_us = 0;
  double host_outside_us = 0;
  int failures = 0;
};

// Fills the shape's floor (the bare figures x max(1, vCPUs / cores)) and its ratios.
void ApplyFloor(const BareVcpuFloor& floor, int cores, Point& p);

void PrintTable(const std::vector<Point>& points, const BareVcpuFloor& floor, int cores,
                int rounds, const std::string& program);
std::string PointJson(const Point& p);

}  // namespace ucode::rendezvous

#endif  // UCODE_VMM_RENDEZVOUS_BENCH_POINTS_H_
