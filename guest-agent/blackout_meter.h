// The guest's own measure of how long its vCPUs were held: between guest-ucode-prepare and
// guest-ucode-complete a thread reads CLOCK_MONOTONIC in a loop and keeps the largest gap
// between two consecutive reads. A host hold (freeze, suspend, preemption) shows up as a
// gap; nothing else the guest does can be told apart from it, so the thread also records
// its baseline: the largest gap before the pause window opens (MarkPauseWindow, when the
// prepare reply is about to go out: the host parks only after it has every reply).
//
// The thread runs at SCHED_IDLE, so it only takes a vCPU nothing else in the guest wants;
// it stops at Stop() (complete) or when `limit` passes, whichever comes first.
//
// Threading: Start/MarkPauseWindow/Stop/Last from the agent's one command thread.
#ifndef UCODE_GUEST_AGENT_BLACKOUT_METER_H_
#define UCODE_GUEST_AGENT_BLACKOUT_METER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "guest-agent/json.h"

namespace ucode_agent {

struct BlackoutResult {
  int64_t max_gap_ns = 0;       // largest gap seen
  int64_t pause_gap_ns = 0;     // largest gap after the pause window opened
  int64_t baseline_gap_ns = 0;  // largest gap before it
  int64_t samples = 0;
  int64_t measured_ns = 0;      // how long the thread ran
  bool hit_limit = false;       // stopped by the limit, not by complete
  [[nodiscard]] json::Value ToJson() const;
};

class BlackoutMeter {
 public:
  BlackoutMeter() = default;
  ~BlackoutMeter() { Stop(); }
  BlackoutMeter(const BlackoutMeter&) = delete;
  BlackoutMeter& operator=(const BlackoutMeter&) = delete;

  // Starts a new measurement (ending any running one), for at most `limit`.
  void Start(std::chrono::milliseconds limit);
  void MarkPauseWindow() { pause_window_.store(true, std::memory_order_release); }
  // Ends the measurement and returns it; nullopt when none was started.
  std::optional<BlackoutResult> Stop();

 private:
  void Run(std::chrono::steady_clock::time_point end);

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> pause_window_{false};
  std::mutex mu_;
  BlackoutResult result_;  // written by the thread before it exits; guarded by mu_
};

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_BLACKOUT_METER_H_
