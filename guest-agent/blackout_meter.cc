#include "guest-agent/blackout_meter.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include <algorithm>

namespace ucode_agent {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace

json::Value BlackoutResult::ToJson() const {
  json::Value v = json::Object{};
  v.Set("clock", "CLOCK_MONOTONIC");
  v.Set("max-gap-ns", max_gap_ns);
  v.Set("pause-gap-ns", pause_gap_ns);
  v.Set("baseline-gap-ns", baseline_gap_ns);
  v.Set("samples", samples);
  v.Set("measured-ns", measured_ns);
  v.Set("stopped-by", hit_limit ? "limit" : "complete");
  return v;
}

void BlackoutMeter::Start(std::chrono::milliseconds limit) {
  Stop();
  stop_.store(false);
  pause_window_.store(false);
  {
    std::lock_guard<std::mutex> lock(mu_);
    result_ = BlackoutResult{};
  }
  const auto end = std::chrono::steady_clock::now() + limit;
  thread_ = std::thread([this, end] { Run(end); });
}

void BlackoutMeter::Run(std::chrono::steady_clock::time_point end) {
  sched_param none{};
  pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
  pthread_setname_np(pthread_self(), "blackout-meter");
  const int64_t end_ns = MonotonicNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                             end - std::chrono::steady_clock::now())
                                             .count();
  BlackoutResult r;
  const int64_t start = MonotonicNs();
  int64_t prev = start;
  while (!stop_.load(std::memory_order_relaxed)) {
    const int64_t now = MonotonicNs();
    const int64_t gap = now - prev;
    prev = now;
    ++r.samples;
    r.max_gap_ns = std::max(r.max_gap_ns, gap);
    if (pause_window_.load(std::memory_order_relaxed)) {
      r.pause_gap_ns = std::max(r.pause_gap_ns, gap);
    } else {
      r.baseline_gap_ns = std::max(r.baseline_gap_ns, gap);
    }
    if (now >= end_ns) {
      r.hit_limit = true;
      break;
    }
  }
  r.measured_ns = prev - start;
  std::lock_guard<std::mutex> lock(mu_);
  result_ = r;
}

std::optional<BlackoutResult> BlackoutMeter::Stop() {
  if (!thread_.joinable()) return std::nullopt;
  stop_.store(true);
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return result_;
}

}  // namespace ucode_agent
