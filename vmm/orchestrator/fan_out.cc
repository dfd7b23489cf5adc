#include "vmm/orchestrator/fan_out.h"

#include <pthread.h>

#include <thread>
#include <vector>

#include "absl/time/clock.h"

namespace ucode::orchestrator {

void FanOut(size_t count, absl::Duration timeout,
            const std::function<std::string(size_t)>& thread_name,
            const std::function<void(const FanOutItem&)>& run) {
  const absl::Time deadline = absl::Now() + timeout;
  if (count == 1) {
    run({.index = 0, .deadline = deadline});
    return;
  }
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    threads.emplace_back([&, i, name = thread_name(i)] {
      pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
      run({.index = i, .deadline = deadline});
    });
  }
  for (std::thread& t : threads) t.join();
}

}  // namespace ucode::orchestrator
