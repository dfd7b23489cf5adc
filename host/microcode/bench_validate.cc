// Validation throughput over the whole Intel 20251111 release, against this machine's
// own memcpy bandwidth measured on the same amount of data in the same run.
// Usage: bazel run -c opt //host/microcode:bench_validate [-- RUNS]
// Prints a table and one JSON line. Figures are medians over RUNS (default 21).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "host/microcode/checksum.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"

namespace ucode::microcode {
namespace {

using Clock = std::chrono::steady_clock;

// Median MB/s (10^6 bytes) of `runs` timed calls of `fn`, each over `bytes` bytes.
double MedianMBps(int runs, size_t bytes, const std::function<void()>& fn) {
  fn();  // warm caches and page tables
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) {
    Clock::time_point start = Clock::now();
    fn();
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    rates.push_back(bytes / seconds / 1e6);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

int Main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 21;
  absl::StatusOr<std::string> dir = FindReleaseDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "bench_validate: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::vector<std::string>> files = ListFiles(*dir);
  if (!files.ok()) return 1;
  std::vector<std::vector<uint8_t>> contents;
  size_t total = 0;
  for (const std::string& f : *files) {
    absl::StatusOr<std::vector<uint8_t>> bytes = ReadFileBytes(f);
    if (!bytes.ok()) {
      std::fprintf(stderr, "bench_validate: %s\n", std::string(bytes.status().message()).c_str());
      return 1;
    }
    total += bytes->size();
    contents.push_back(*std::move(bytes));
  }

  size_t images = 0;
  bool all_ok = true;
  const double validate = MedianMBps(runs, total, [&] {
    images = 0;
    for (const std::vector<uint8_t>& c : contents) {
      absl::StatusOr<std::vector<MicrocodeImage>> parsed = ParseBundleStrict(c);
      all_ok &= parsed.ok();
      if (parsed.ok()) images += parsed->size();
    }
  });

  std::vector<uint8_t> src(total, 0x5a), dst(total, 0);
  const double memcpy_rate = MedianMBps(runs, total, [&] {
    std::memcpy(dst.data(), src.data(), total);
    asm volatile("" : : "r"(dst.data()) : "memory");  // keep the copy
  });
  volatile uint32_t sink = 0;
  const double sum_rate = MedianMBps(runs, total, [&] { sink = sink + SumDwords(src); });

  std::printf("%-34s %12s\n", "measure (median of runs)", "MB/s");
  std::printf("%-34s %12.0f\n", "validate whole release", validate);
  std::printf("%-34s %12.0f\n", "SumDwords over same bytes", sum_rate);
  std::printf("%-34s %12.0f\n", "memcpy same bytes", memcpy_rate);
  std::printf("%-34s %12.2f\n", "validate / memcpy", validate / memcpy_rate);
  std::printf("files %zu, images %zu, bytes %zu, runs %d, all valid %s\n", contents.size(),
              images, total, runs, all_ok ? "yes" : "NO");
  std::printf(
      "{\"bench\":\"validate\",\"files\":%zu,\"images\":%zu,\"bytes\":%zu,\"runs\":%d,"
      "\"validate_mbps\":%.0f,\"sum_dwords_mbps\":%.0f,\"memcpy_mbps\":%.0f,"
      "\"ratio_to_memcpy\":%.3f,\"all_valid\":%s}\n",
      contents.size(), images, total, runs, validate, sum_rate, memcpy_rate,
      validate / memcpy_rate, all_ok ? "true" : "false");
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace ucode::microcode

int main(int argc, char** argv) { return ucode::microcode::Main(argc, argv); }
