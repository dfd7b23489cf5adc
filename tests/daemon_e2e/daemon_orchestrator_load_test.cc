// 100 concurrent clients watching and polling ucoded during real applies (orchestrator,
// emulated host, a managed fleet of real KVM VMs): every client's stream holds every event
// in order, no call fails, and the rendezvous's coordination overhead (report:
// rendezvous.overhead_us) under load is compared with the idle figure, medians of a few
// applies of each, side by side in this run.
//
// Tests assert behaviour, never timings: the two medians and their ratio are printed for
// the reader; the benchmark (bench_ucoded) carries the figure.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon_e2e/ucoded_process.h"

namespace ucode::daemon_e2e {
namespace {

constexpr int kClients = 100;
constexpr int kAppliesPerPhase = 5;
// Each client's cadence between polls (GetOperation, DescribeHost, ListGuests).
constexpr absl::Duration kPollInterval = absl::Milliseconds(50);
// A 1 MiB image: staging takes long enough for every watcher to attach before the
// rendezvous, so the window is measured with 100 attached watchers and steady polling.
constexpr size_t kImageKib = 1024;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct ApplyOutcome {
  double overhead_us = -1;
  std::string rendezvous;  // the report's rendezvous object and activation window
  std::vector<v1::OperationEvent> events;  // the driver's own watch
};

ApplyOutcome RunApply(UcodedProcess& ucoded, const std::string& name) {
  ApplyOutcome out;
  grpc::Status st;
  out.events = WatchAll(ucoded.stub(), name, &st);
  if (!st.ok() || out.events.empty()) return out;
  const v1::Operation& done = out.events.back().final_state();
  if (done.state() != v1::OPERATION_STATE_SUCCEEDED) return out;
  out.overhead_us = done.report().rendezvous().overhead_us();
  out.rendezvous = absl::StrCat(done.report().rendezvous().ShortDebugString(),
                                " host: ", done.report().host().ShortDebugString());
  return out;
}

TEST(DaemonOrchestratorLoad, HundredClientsWatchAndPollDuringRealApplies) {
  SKIP_WITHOUT_KVM();
  ScratchDir dir;
  // Halting guests: 8 spinning vCPUs on 2 shared cores would make the release (every
  // vCPU back in guest mode) a matter of CPU time slices, drowning what the daemon adds.
  UcodedProcess ucoded(dir, "4x2:halt");
  ASSERT_TRUE(ucoded.serving()) << ucoded.log();
  ASSERT_GT(RunApply(ucoded, ucoded.StartApply(kImageKib)).overhead_us, 0) << "warm-up apply failed";

  std::vector<double> idle;
  for (int i = 0; i < kAppliesPerPhase; ++i) {
    ApplyOutcome a = RunApply(ucoded, ucoded.StartApply(kImageKib));
    ASSERT_GT(a.overhead_us, 0) << (a.events.empty() ? "" : a.events.back().message());
    idle.push_back(a.overhead_us);
    if (i == 0) std::printf("idle apply: %s\n", a.rendezvous.c_str());
  }

  std::vector<double> loaded;
  std::atomic<int> failed_calls{0};
  std::atomic<long> polls{0};
  for (int round = 0; round < kAppliesPerPhase; ++round) {
    // Clients connect and start polling first; the apply starts once all are in.
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::string name;
    std::vector<std::vector<v1::OperationEvent>> seen(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        auto my = UnixStub(ucoded.socket());  // one connection per client
        grpc::ClientContext hctx;
        v1::Host host;
        if (!my->DescribeHost(&hctx, v1::DescribeHostRequest(), &host).ok()) failed_calls++;
        ready.fetch_add(1);
        while (!go.load()) absl::SleepFor(absl::Milliseconds(1));
        absl::SleepFor(kPollInterval * c / kClients);  // spread the polls out
        std::atomic<bool> watch_done{false};
        std::thread watcher([&] {
          grpc::Status st;
          seen[c] = WatchAll(*my, name, &st);
          if (!st.ok()) failed_calls++;
          watch_done.store(true);
        });
        while (!watch_done.load()) {
          grpc::ClientContext g, h, l;
          v1::GetOperationRequest greq;
          greq.set_name(name);
          v1::Operation got;
          if (!my->GetOperation(&g, greq, &got).ok()) failed_calls++;
          v1::Host hh;
          if (!my->DescribeHost(&h, v1::DescribeHostRequest(), &hh).ok()) failed_calls++;
          v1::ListGuestsResponse guests;
          if (!my->ListGuests(&l, v1::ListGuestsRequest(), &guests).ok()) failed_calls++;
          polls.fetch_add(3);
          absl::SleepFor(kPollInterval);
        }
        watcher.join();
      });
    }
    while (ready.load() < kClients) absl::SleepFor(absl::Milliseconds(5));
    name = ucoded.StartApply(kImageKib);
    ASSERT_FALSE(name.empty());
    go.store(true);
    ApplyOutcome a = RunApply(ucoded, name);
    for (std::thread& t : clients) t.join();
    ASSERT_GT(a.overhead_us, 0) << (a.events.empty() ? "" : a.events.back().message());
    loaded.push_back(a.overhead_us);
    if (round == 0) std::printf("loaded apply: %s\n", a.rendezvous.c_str());
    for (int c = 0; c < kClients; ++c) {
      ASSERT_EQ(seen[c].size(), a.events.size()) << "client " << c << " round " << round;
      for (size_t i = 0; i < seen[c].size(); ++i) {
        ASSERT_EQ(seen[c][i].sequence(), i + 1) << "client " << c;
        ASSERT_EQ(seen[c][i].step(), a.events[i].step()) << "client " << c;
      }
      EXPECT_EQ(seen[c].back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
    }
  }
  EXPECT_EQ(failed_calls.load(), 0);
  EXPECT_GT(polls.load(), 0);

  const double idle_median = Median(idle);
  const double loaded_median = Median(loaded);
  std::string idle_list, loaded_list;
  for (double v : idle) absl::StrAppend(&idle_list, static_cast<int>(v), " ");
  for (double v : loaded) absl::StrAppend(&loaded_list, static_cast<int>(v), " ");
  std::printf("coordination overhead, median of %d applies: idle %.0f us [%s], "
              "%d clients %.0f us [%s], ratio %.2f\n",
              kAppliesPerPhase, idle_median, idle_list.c_str(), kClients, loaded_median,
              loaded_list.c_str(), loaded_median / idle_median);
}

}  // namespace
}  // namespace ucode::daemon_e2e
