// Process-private futex waits on std::atomic<uint32_t> words, for the emulated
// stop_machine rendezvous (absl::Mutex/CondVar is slow on this Abseil build when a dozen
// threads wake at once; see DEVELOPING.md). Deadlines are absolute CLOCK_MONOTONIC ns.
#ifndef UCODE_HOST_PLATFORM_FUTEX_H_
#define UCODE_HOST_PLATFORM_FUTEX_H_

#include <atomic>
#include <cstdint>
#include <limits>

namespace ucode::platform {

inline constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

// CLOCK_MONOTONIC in ns.
int64_t MonotonicNs();

// Sleeps while *word == expected, until a wake, a signal or `deadline_ns`; callers
// re-check their condition (spurious returns are allowed).
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected, int64_t deadline_ns);
void FutexWakeAll(std::atomic<uint32_t>* word);

// Waits until ready(*word) or the deadline; returns the last ready(). The waker must
// change *word before it wakes it (the predicate reads only the word).
template <typename Pred>
bool FutexWaitUntil(std::atomic<uint32_t>* word, Pred ready, int64_t deadline_ns) {
  for (;;) {
    const uint32_t v = word->load(std::memory_order_acquire);
    if (ready(v)) return true;
    if (MonotonicNs() >= deadline_ns) return false;
    FutexWait(word, v, deadline_ns);
  }
}

}  // namespace ucode::platform

#endif  // UCODE_HOST_PLATFORM_FUTEX_H_
