#include "host/platform/stopper_threads.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace ucode::platform {
namespace {

pid_t Tid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

TEST(StopperThreads, RunsEveryIndexOncePerCallOnTheSameThreadsEachTime) {
  StopperThreads stoppers(6);
  ASSERT_EQ(stoppers.size(), 6);
  std::vector<pid_t> first(6, 0);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::atomic<int>> calls(6);
    std::vector<pid_t> tids(6, 0);
    stoppers.RunOnEach([&](int i) {
      calls[i].fetch_add(1);
      tids[i] = Tid();
    });
    for (int i = 0; i < 6; ++i) EXPECT_EQ(calls[i].load(), 1) << "round " << round << " i " << i;
    if (round == 0) {
      first = tids;
      EXPECT_EQ(std::set<pid_t>(tids.begin(), tids.end()).size(), 6u);
      EXPECT_EQ(std::count(tids.begin(), tids.end(), Tid()), 0);
    } else {
      EXPECT_EQ(tids, first) << "round " << round;
    }
  }
}

TEST(StopperThreads, AllThreadsRunAtOnce) {
  // Every thread waits for every other one inside the same call: only possible if all
  // were released together.
  StopperThreads stoppers(8);
  std::atomic<int> arrived{0};
  std::atomic<int> saw_all{0};
  stoppers.RunOnEach([&](int) {
    arrived.fetch_add(1);
    while (arrived.load() < 8) std::this_thread::yield();
    saw_all.fetch_add(1);
  });
  EXPECT_EQ(saw_all.load(), 8);
}

TEST(StopperThreads, WorkerSignalsAreBlocked) {
  StopperThreads stoppers(2);
  std::vector<int> usr1_blocked(2, 0);
  stoppers.RunOnEach([&](int i) {
    sigset_t set;
    pthread_sigmask(SIG_BLOCK, nullptr, &set);
    usr1_blocked[i] = sigismember(&set, SIGINT) && sigismember(&set, SIGUSR1);
  });
  EXPECT_EQ(usr1_blocked, (std::vector<int>{1, 1}));
}

TEST(StopperThreads, SharedSetIsKeptAcrossLeasesAndResizedOnDemand) {
  StopperThreads* first;
  {
    StopperThreads::Lease lease = StopperThreads::Acquire(4);
    first = &lease.threads();
    EXPECT_EQ(first->size(), 4);
  }
  {
    StopperThreads::Lease lease = StopperThreads::Acquire(4);
    EXPECT_EQ(&lease.threads(), first);
  }
  StopperThreads::Lease lease = StopperThreads::Acquire(3);
  EXPECT_EQ(lease.threads().size(), 3);
  int ran = 0;
  std::atomic<int> n{0};
  lease.threads().RunOnEach([&](int) { n.fetch_add(1); });
  ran = n.load();
  EXPECT_EQ(ran, 3);
}

TEST(StopperThreads, ZeroThreadsReturnsAtOnce) {
  StopperThreads stoppers(0);
  stoppers.RunOnEach([](int) { FAIL() << "no thread should run"; });
}

}  // namespace
}  // namespace ucode::platform
