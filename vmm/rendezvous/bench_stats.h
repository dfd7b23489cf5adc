// The numbers every park benchmark prints with (bench_rendezvous, bench_park_linux,
// bench_park_libvirt): a median, a duration in microseconds, a ratio.
#ifndef UCODE_VMM_RENDEZVOUS_BENCH_STATS_H_
#define UCODE_VMM_RENDEZVOUS_BENCH_STATS_H_

#include <algorithm>
#include <vector>

#include "absl/time/time.h"

namespace ucode::bench {

// Median of `v` (mean of the middle two for an even count); 0 when empty.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

inline double Us(absl::Duration d) { return absl::ToDoubleMicroseconds(d); }

inline double Ratio(double a, double b) { return b > 0 ? a / b : 0; }  // 0 when b is not

}  // namespace ucode::bench

#endif  // UCODE_VMM_RENDEZVOUS_BENCH_STATS_H_
