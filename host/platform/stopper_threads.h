// Persistent per-CPU "stopper" threads for the emulated stop_machine_nmi rendezvous.
//
// The kernel's stop_machine() does not create threads: one cpu_stopper thread per CPU
// exists from boot (kernel/stop_machine.c, smpboot "migration/N"), runs at the highest
// SCHED_FIFO priority and sleeps until work is queued. Spawning one thread per emulated CPU
// on every load instead put thread creation and the first scheduling of every new thread
// inside the window where the VMM side holds every vCPU. Here the threads are created
// once (before the caller parks anything), sleep on one futex word, and are woken together
// by a single FUTEX_WAKE for each rendezvous.
//
// Threads: `count` threads named "ucode-stop/<i>", with every signal blocked (process-
// directed signals such as Ctrl-C go to whichever thread the program chose) and
// SCHED_FIFO at kStopperRtPriority when the process may (best effort). The destructor
// stops and joins them.
#ifndef UCODE_HOST_PLATFORM_STOPPER_THREADS_H_
#define UCODE_HOST_PLATFORM_STOPPER_THREADS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace ucode::platform {

// Above the VMM rendezvous path (vmm/rendezvous/area.h: coordinator 2, kicked vCPUs 1):
// while the host is stopped nothing else of ours should run before a stopper thread.
inline constexpr int kStopperRtPriority = 3;

class StopperThreads {
 public:
  explicit StopperThreads(int count);
  StopperThreads(const StopperThreads&) = delete;
  StopperThreads& operator=(const StopperThreads&) = delete;
  ~StopperThreads();  // wakes every thread to exit and joins it

  [[nodiscard]] int size() const { return static_cast<int>(threads_.size()); }

  // Runs work(i) on stopper thread i, for every i, all released by one wake; returns when
  // every call has returned (work must bound its own waits). The caller's thread runs at
  // kStopperRtPriority meanwhile unless it already runs SCHED_FIFO/RR, so that it is
  // not left waiting for a core once the last stopper finishes. Not reentrant: one caller
  // at a time (see Lease).
  void RunOnEach(absl::FunctionRef<void(int)> work);

  // Exclusive use of the process-wide set of `count` threads, created on first use (or
  // re-created when a different count is asked for) and then kept for the life of the
  // process, like the kernel's. Acquire before holding anything that waits on the load.
  class Lease {
   public:
    [[nodiscard]] StopperThreads& threads() const { return *threads_; }

   private:
    friend class StopperThreads;
    Lease(std::unique_lock<std::mutex> lock, StopperThreads* threads)
        : lock_(std::move(lock)), threads_(threads) {}
    std::unique_lock<std::mutex> lock_;
    StopperThreads* threads_;
  };
  [[nodiscard]] static Lease Acquire(int count);

 private:
  void Main(int index);

  // The futex word the idle threads sleep on; bumped once per RunOnEach (and on stop).
  std::atomic<uint32_t> generation_{0};
  // Threads that have not finished the current generation; the last one wakes the caller.
  std::atomic<uint32_t> pending_{0};
  uint32_t count_ = 0;                // set before any thread starts
  std::atomic<uint32_t> started_{0};  // threads that reached their first wait
  std::atomic<bool> stopping_{false};
  absl::FunctionRef<void(int)>* work_ = nullptr;  // set before generation_ is bumped
  std::vector<std::thread> threads_;
};

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_STOPPER_THREADS_H_
