// 100 concurrent clients, each on its own Unix-socket connection, watch and poll one apply:
// every client's stream holds every event, in order, and no call fails.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/daemon_e2e/daemon_test_util.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/log.h"

namespace ucode::daemon_e2e {
namespace {

constexpr int kClients = 100;

TEST(DaemonLoad, HundredClientsWatchAndPollDuringAnApply) {
  daemon::SetLogEnabled(false);
  ScratchDir dir;
  daemon::FakeRunnerOptions ro = daemon::DefaultFakeRunnerOptions();
  ro.chunks_per_package = 20;
  // Spreads the apply out so clients join while it runs, not after.
  ro.step_delay = absl::Milliseconds(20);
  daemon::FakeUpdateRunner runner(ro);
  runner.PauseAt(v1::STEP_VALIDATED);
  daemon::DaemonOptions o;
  o.unix_socket = dir.File("ucoded.sock");
  o.journal_path = dir.File("journal.sqlite");
  o.allow_uids = {getuid()};
  auto d = daemon::Daemon::Start(o, &runner);
  ASSERT_TRUE(d.ok()) << d.status();

  auto stub = UnixStub(o.unix_socket);
  v1::Operation op;
  ASSERT_TRUE(StartApply(*stub, TestImage(), &op).ok());

  std::atomic<int> failed_calls{0};
  std::atomic<int> polls{0};
  std::atomic<int> watching{0};
  std::vector<std::vector<v1::OperationEvent>> seen(kClients);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto my = UnixStub(o.unix_socket);  // one connection per client
      std::atomic<bool> watch_done{false};
      std::thread watcher([&] {
        grpc::ClientContext wctx;
        v1::WatchOperationRequest wreq;
        wreq.set_name(op.name());
        auto reader = my->WatchOperation(&wctx, wreq);
        watching.fetch_add(1);
        v1::OperationEvent e;
        while (reader->Read(&e)) seen[c].push_back(e);
        if (!reader->Finish().ok()) failed_calls.fetch_add(1);
        watch_done.store(true);
      });
      while (!watch_done.load()) {
        grpc::ClientContext g;
        v1::GetOperationRequest greq;
        greq.set_name(op.name());
        v1::Operation got;
        if (!my->GetOperation(&g, greq, &got).ok()) failed_calls.fetch_add(1);
        grpc::ClientContext h;
        v1::Host host;
        if (!my->DescribeHost(&h, v1::DescribeHostRequest(), &host).ok()) failed_calls.fetch_add(1);
        grpc::ClientContext l;
        v1::ListOperationsResponse list;
        if (!my->ListOperations(&l, v1::ListOperationsRequest(), &list).ok()) {
          failed_calls.fetch_add(1);
        }
        polls.fetch_add(3);
      }
      watcher.join();
    });
  }
  // Let the apply run once every client has a stream open (the events before that are
  // replayed anyway; this makes most of them live).
  while (watching.load() < kClients) absl::SleepFor(absl::Milliseconds(10));
  runner.Resume(v1::STEP_VALIDATED);
  for (std::thread& t : clients) t.join();

  EXPECT_EQ(failed_calls.load(), 0);
  EXPECT_GT(polls.load(), 0);
  const size_t expected = seen[0].size();
  // VALIDATED, 2x20 STAGING, STAGED, the 4 rendezvous steps, VERIFIED, AGENTS_NOTIFIED, DONE.
  EXPECT_EQ(expected, 1u + 2 * 20 + 1 + 4 + 1 + 1 + 1);
  for (int c = 0; c < kClients; ++c) {
    ASSERT_EQ(seen[c].size(), expected) << "client " << c;
    for (size_t i = 0; i < seen[c].size(); ++i) {
      ASSERT_EQ(seen[c][i].sequence(), i + 1) << "client " << c;
      ASSERT_EQ(seen[c][i].step(), seen[0][i].step()) << "client " << c;
    }
    EXPECT_EQ(seen[c].back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
  }
}

}  // namespace
}  // namespace ucode::daemon_e2e
