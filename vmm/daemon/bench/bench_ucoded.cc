// bench_ucoded: ucoded's control-plane costs, side by side in one run.
//   - DescribeHost round trip: in-process channel, Unix socket, mutual-TLS TCP on loopback.
//   - Watch-event delivery lag: from the runner's Emit (the event's time stamp) to a client
//     reading it over the Unix socket.
//   - Apply end to end with the fake runner (the journal's fsyncs are most of it).
//   - Apply and its rendezvous window idle, then with 100 clients watching and polling.
//   - With /dev/kvm: watch-event lag of real applies (OrchestratorRunner, emulated host, a
//     4x2 ucode-vmm fleet of halting guests); the held window's events (PARKED, ACTIVATED,
//     GUEST_VIEWS_SET) are handed over at RELEASED by design and are shown apart.
// Prints a table and one JSON line. usage: bench_ucoded [--calls N] [--applies N] [--poll_ms N]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "host/base/read_file.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"
#include "proto/json.h"
#include "vmm/daemon/api/test_certificates.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/log.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/runner/orchestrator_runner.h"

namespace ucode::daemon {
namespace {

struct Stats {
  double median_us = 0, p90_us = 0, p99_us = 0;
  size_t n = 0;
};

Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.median_us = v[v.size() / 2];
  s.p90_us = v[v.size() * 9 / 10];
  s.p99_us = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  return s;
}

Stats TimeDescribe(v1::UcodeService::Stub& stub, int calls) {
  for (int i = 0; i < 100; ++i) {  // connection set-up and warm caches
    grpc::ClientContext ctx;
    v1::Host h;
    stub.DescribeHost(&ctx, v1::DescribeHostRequest(), &h);
  }
  std::vector<double> us;
  us.reserve(calls);
  for (int i = 0; i < calls; ++i) {
    grpc::ClientContext ctx;
    v1::Host h;
    absl::Time t0 = absl::Now();
    grpc::Status s = stub.DescribeHost(&ctx, v1::DescribeHostRequest(), &h);
    double d = absl::ToDoubleMicroseconds(absl::Now() - t0);
    if (!s.ok()) {
      std::fprintf(stderr, "DescribeHost failed: %s\n", s.error_message().c_str());
      return Stats{};
    }
    us.push_back(d);
  }
  return Summarize(std::move(us));
}

// Starts an apply of `image` that the runner holds at its first step until Resume, so that
// a watcher attached before then sees every event live. Returns the operation name, or ""
// when ApplyUpdate fails.
std::string StartHeldApply(v1::UcodeService::Stub& stub, FakeUpdateRunner& runner,
                           const std::string& image) {
  runner.PauseAt(v1::STEP_VALIDATED);
  v1::ApplyUpdateRequest req;
  req.mutable_image()->set_image_bytes(image);
  grpc::ClientContext ctx;
  v1::Operation op;
  if (!stub.ApplyUpdate(&ctx, req, &op).ok()) return "";
  return op.name();
}

std::unique_ptr<grpc::ClientReader<v1::OperationEvent>> Watch(v1::UcodeService::Stub& stub,
                                                              grpc::ClientContext* ctx,
                                                              const std::string& name) {
  v1::WatchOperationRequest req;
  req.set_name(name);
  return stub.WatchOperation(ctx, req);
}

// Releases the runner held by StartHeldApply; returns when it was released.
absl::Time ReleaseHeldApply(FakeUpdateRunner& runner) {
  (void)runner.WaitUntilPausedAt(v1::STEP_VALIDATED, absl::Seconds(10));
  absl::Time released = absl::Now();
  runner.Resume(v1::STEP_VALIDATED);
  return released;
}

// Lag of every live event of `applies` applies, and each apply's total duration.
void TimeApplies(v1::UcodeService::Stub& stub, FakeUpdateRunner& runner, int applies,
                 std::vector<double>* lag_us, std::vector<double>* apply_ms) {
  std::string image;
  auto img = microcode::GenerateImage(microcode::GeneratorOptions{});
  image.assign(img->begin(), img->end());
  for (int i = 0; i < applies; ++i) {
    // Held at its first step until the watcher is attached, so every event is live.
    const std::string name = StartHeldApply(stub, runner, image);
    if (name.empty()) return;
    grpc::ClientContext wctx;
    auto reader = Watch(stub, &wctx, name);
    absl::Time released = ReleaseHeldApply(runner);
    v1::OperationEvent e;
    while (reader->Read(&e)) {
      lag_us->push_back(static_cast<double>(absl::ToUnixMicros(absl::Now()) - e.time_unix_us()));
    }
    reader->Finish();
    apply_ms->push_back(absl::ToDoubleMilliseconds(absl::Now() - released));
  }
}

// Apply duration (runner released → DONE seen) with `clients` other clients, each on its
// own connection, watching that apply and polling GetOperation + DescribeHost every
// `poll_ms`. The rendezvous window (PARKED → RELEASED events) is the part guests feel.
// Compared with clients = 0 it shows what watchers cost the runner.
struct LoadedApplies {
  std::vector<double> apply_ms;
  std::vector<double> rendezvous_us;  // PARKED event → RELEASED event, as the runner emitted
};

LoadedApplies TimeAppliesUnderLoad(const std::string& socket, FakeUpdateRunner& runner,
                                   int applies, int clients, int poll_ms) {
  std::vector<std::unique_ptr<v1::UcodeService::Stub>> stubs;
  for (int c = 0; c < clients; ++c) {
    grpc::ChannelArguments args;
    args.SetInt("ucode.bench_client", c);  // distinct args: a connection per client
    stubs.push_back(v1::UcodeService::NewStub(grpc::CreateCustomChannel(
        "unix:" + socket, grpc::InsecureChannelCredentials(), args)));
  }
  auto timing = v1::UcodeService::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  std::string image;
  auto img = microcode::GenerateImage(microcode::GeneratorOptions{});
  image.assign(img->begin(), img->end());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::string current;
  absl::Mutex current_mu;
  std::vector<std::thread> pollers;
  for (int c = 0; c < clients; ++c) {
    pollers.emplace_back([&, c] {
      while (!stop.load()) {
        std::string name;
        {
          absl::MutexLock l(&current_mu);
          name = current;
        }
        if (!name.empty()) {
          grpc::ClientContext g;
          v1::GetOperationRequest req;
          req.set_name(name);
          v1::Operation op;
          if (!stubs[c]->GetOperation(&g, req, &op).ok()) failures.fetch_add(1);
        }
        grpc::ClientContext h;
        v1::Host host;
        if (!stubs[c]->DescribeHost(&h, v1::DescribeHostRequest(), &host).ok()) failures.fetch_add(1);
        absl::SleepFor(absl::Milliseconds(poll_ms));
      }
    });
  }
  LoadedApplies out;
  for (int i = 0; i < applies; ++i) {
    const std::string name = StartHeldApply(*timing, runner, image);
    if (name.empty()) break;
    {
      absl::MutexLock l(&current_mu);
      current = name;
    }
    std::vector<std::thread> watchers;
    std::atomic<int> attached{0};
    for (int c = 0; c < clients; ++c) {
      watchers.emplace_back([&, c] {
        grpc::ClientContext w;
        auto reader = Watch(*stubs[c], &w, name);
        attached.fetch_add(1);
        v1::OperationEvent e;
        while (reader->Read(&e)) {
        }
        if (!reader->Finish().ok()) failures.fetch_add(1);
      });
    }
    while (attached.load() < clients) absl::SleepFor(absl::Milliseconds(1));
    grpc::ClientContext wctx;
    auto reader = Watch(*timing, &wctx, name);
    absl::Time released = ReleaseHeldApply(runner);
    v1::OperationEvent e;
    int64_t parked_us = 0;
    while (reader->Read(&e)) {
      if (e.step() == v1::STEP_PARKED) parked_us = e.time_unix_us();
      if (e.step() == v1::STEP_RELEASED) {
        out.rendezvous_us.push_back(static_cast<double>(e.time_unix_us() - parked_us));
      }
    }
    reader->Finish();
    out.apply_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - released));
    for (std::thread& t : watchers) t.join();
  }
  stop.store(true);
  for (std::thread& t : pollers) t.join();
  if (failures.load() > 0) std::fprintf(stderr, "bench_ucoded: %d calls failed under load\n", failures.load());
  return out;
}

// Watch-event lag of real applies through the orchestrator: the watcher attaches right
// after ApplyUpdate returns; events emitted before it attached (replayed) are not counted.
struct RealLag {
  std::vector<double> lag_us;       // events outside the held window
  std::vector<double> held_lag_us;  // PARKED, ACTIVATED, GUEST_VIEWS_SET (deferred)
  std::vector<double> overhead_us;  // the report's rendezvous.overhead_us
  std::string skipped;              // why not measured
};

RealLag TimeRealApplies(const std::string& dir, int applies) {
  RealLag out;
  if (access("/dev/kvm", R_OK | W_OK) != 0) {
    out.skipped = "no /dev/kvm";
    return out;
  }
  OrchestratorRunnerOptions ro;
  auto host = platform::EmulatedPlatform::Create(platform::DemoHostConfig());
  if (!host.ok()) {
    out.skipped = host.status().ToString();
    return out;
  }
  ro.platform = std::move(*host);
  ro.fleet = VmmFleetSpec{.vms = 4, .vcpus = 2, .program = "halt"};
  ro.state_dir = dir + "/vmm";
  auto runner = OrchestratorRunner::Create(std::move(ro));
  if (!runner.ok()) {
    out.skipped = runner.status().ToString();
    return out;
  }
  DaemonOptions o;
  o.unix_socket = dir + "/real.sock";
  o.journal_path = dir + "/real.sqlite";
  o.allow_uids = {getuid()};
  auto d = Daemon::Start(o, runner->get());
  if (!d.ok()) {
    out.skipped = d.status().ToString();
    return out;
  }
  auto stub = v1::UcodeService::NewStub(
      grpc::CreateChannel("unix:" + o.unix_socket, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < applies; ++i) {
    grpc::ClientContext hctx;
    v1::Host h;
    if (!stub->DescribeHost(&hctx, v1::DescribeHostRequest(), &h).ok()) break;
    microcode::GeneratorOptions g;
    g.revision = h.cpus(0).revision() + 1;
    g.min_req_revision = h.cpus(0).revision();
    auto img = microcode::GenerateImage(g);
    v1::ApplyUpdateRequest req;
    req.mutable_image()->set_image_bytes(std::string(img->begin(), img->end()));
    grpc::ClientContext ctx;
    v1::Operation op;
    if (!stub->ApplyUpdate(&ctx, req, &op).ok()) break;
    const int64_t attached = absl::ToUnixMicros(absl::Now());
    grpc::ClientContext wctx;
    auto reader = Watch(*stub, &wctx, op.name());
    v1::OperationEvent e;
    while (reader->Read(&e)) {
      if (e.time_unix_us() < attached) continue;
      double lag = static_cast<double>(absl::ToUnixMicros(absl::Now()) - e.time_unix_us());
      const bool held = e.step() == v1::STEP_PARKED || e.step() == v1::STEP_ACTIVATED ||
                        e.step() == v1::STEP_GUEST_VIEWS_SET;
      (held ? out.held_lag_us : out.lag_us).push_back(lag);
      if (e.step() == v1::STEP_DONE) {
        const v1::UpdateReport& report = e.final_state().report();
        if (report.has_rendezvous()) out.overhead_us.push_back(report.rendezvous().overhead_us());
      }
    }
    reader->Finish();
  }
  (*d)->Shutdown(absl::Seconds(2));
  return out;
}

int Main(int argc, char** argv) {
  int calls = 2000, applies = 20, poll_ms = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int* target = flag == "--calls"     ? &calls
                  : flag == "--applies" ? &applies
                  : flag == "--poll_ms" ? &poll_ms
                                        : nullptr;
    if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target)) {
      std::fprintf(stderr, "usage: bench_ucoded [--calls N] [--applies N] [--poll_ms N]\n");
      return 2;
    }
  }
  SetLogEnabled(false);
  char tmpl[] = "/tmp/bench-ucoded-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  bool have_certs = MakeTestCertificates(dir);

  FakeUpdateRunner runner;
  DaemonOptions o;
  o.unix_socket = dir + "/ucoded.sock";
  o.journal_path = dir + "/journal.sqlite";
  o.allow_uids = {getuid()};
  if (have_certs) {
    o.tcp_address = "127.0.0.1:0";
    o.tls_cert_file = dir + "/server.crt";
    o.tls_key_file = dir + "/server.key";
    o.tls_client_ca_file = dir + "/ca.crt";
  }
  auto d = Daemon::Start(o, &runner);
  if (!d.ok()) {
    std::fprintf(stderr, "bench_ucoded: %s\n", d.status().ToString().c_str());
    return 1;
  }
  auto inproc = v1::UcodeService::NewStub((*d)->InProcessChannel());
  auto unix_stub = v1::UcodeService::NewStub(
      grpc::CreateChannel("unix:" + o.unix_socket, grpc::InsecureChannelCredentials()));
  Stats s_inproc = TimeDescribe(*inproc, calls);
  Stats s_unix = TimeDescribe(*unix_stub, calls);
  Stats s_tls;
  if (have_certs) {
    auto read = [](const std::string& p) { return ReadTextFile(p).value_or(""); };
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = read(dir + "/ca.crt");
    ssl.pem_cert_chain = read(dir + "/client.crt");
    ssl.pem_private_key = read(dir + "/client.key");
    auto tls_stub = v1::UcodeService::NewStub(grpc::CreateChannel(
        absl::StrCat("localhost:", (*d)->tcp_port()), grpc::SslCredentials(ssl)));
    s_tls = TimeDescribe(*tls_stub, calls);
  }
  std::vector<double> lag_us, apply_ms;
  TimeApplies(*unix_stub, runner, applies, &lag_us, &apply_ms);
  Stats s_lag = Summarize(lag_us);
  Stats s_apply = Summarize(apply_ms);  // in ms, despite the field names
  // Idle and loaded applies measured the same way, back to back.
  LoadedApplies idle = TimeAppliesUnderLoad(o.unix_socket, runner, applies, 0, poll_ms);
  LoadedApplies loaded = TimeAppliesUnderLoad(o.unix_socket, runner, applies, 100, poll_ms);
  Stats s_idle = Summarize(idle.apply_ms), s_loaded = Summarize(loaded.apply_ms);
  Stats r_idle = Summarize(idle.rendezvous_us), r_loaded = Summarize(loaded.rendezvous_us);
  double load_ratio = s_idle.median_us > 0 ? s_loaded.median_us / s_idle.median_us : 0;
  double rdv_ratio = r_idle.median_us > 0 ? r_loaded.median_us / r_idle.median_us : 0;

  RealLag real = TimeRealApplies(dir, std::min(applies, 10));
  Stats s_real = Summarize(real.lag_us), s_real_held = Summarize(real.held_lag_us);
  Stats s_real_overhead = Summarize(real.overhead_us);

  std::printf("%-34s %8s %10s %10s %10s\n", "measurement", "n", "median", "p90", "p99");
  auto row = [](const char* name, const Stats& s, const char* unit) {
    std::printf("%-34s %8zu %8.1f%s %8.1f%s %8.1f%s\n", name, s.n, s.median_us, unit, s.p90_us,
                unit, s.p99_us, unit);
  };
  row("DescribeHost in-process", s_inproc, "us");
  row("DescribeHost unix socket", s_unix, "us");
  if (have_certs) row("DescribeHost mTLS TCP loopback", s_tls, "us");
  row("watch event lag (unix socket)", s_lag, "us");
  row("apply, fake runner, to DONE seen", s_apply, "ms");
  row("apply, idle (0 other clients)", s_idle, "ms");
  row("apply, 100 clients watch+poll", s_loaded, "ms");
  row("rendezvous window, idle", r_idle, "us");
  row("rendezvous window, 100 clients", r_loaded, "us");
  if (real.skipped.empty()) {
    row("watch lag, real apply (orchestr.)", s_real, "us");
    row("  held-window events (deferred)", s_real_held, "us");
    row("  real apply coordination overhead", s_real_overhead, "us");
  } else {
    std::printf("real apply (orchestrator): not measured: %s\n", real.skipped.c_str());
  }
  std::printf("loaded/idle medians (poll every %d ms): apply %.2f, rendezvous window %.2f\n",
              poll_ms, load_ratio, rdv_ratio);
  google::protobuf::Struct json;
  StructField(json, "bench").set_string_value("ucoded");
  for (const auto& [key, value] : std::initializer_list<std::pair<const char*, double>>{
           {"calls", calls},
           {"describe_inprocess_median_us", s_inproc.median_us},
           {"describe_unix_median_us", s_unix.median_us},
           {"describe_unix_p99_us", s_unix.p99_us},
           {"describe_mtls_median_us", s_tls.median_us},
           {"describe_mtls_p99_us", s_tls.p99_us},
           {"watch_lag_median_us", s_lag.median_us},
           {"watch_lag_p99_us", s_lag.p99_us},
           {"watch_events", static_cast<double>(s_lag.n)},
           {"apply_fake_median_ms", s_apply.median_us},
           {"apply_idle_median_ms", s_idle.median_us},
           {"apply_100_clients_median_ms", s_loaded.median_us},
           {"loaded_idle_ratio", load_ratio},
           {"rendezvous_idle_median_us", r_idle.median_us},
           {"rendezvous_100_clients_median_us", r_loaded.median_us},
           {"rendezvous_loaded_idle_ratio", rdv_ratio},
           {"poll_ms", poll_ms},
           {"real_watch_lag_median_us", s_real.median_us},
           {"real_watch_lag_p99_us", s_real.p99_us},
           {"real_held_event_lag_median_us", s_real_held.median_us},
           {"real_overhead_median_us", s_real_overhead.median_us}}) {
    StructField(json, key).set_number_value(value);
  }
  StructField(json, "unix_under_1ms").set_bool_value(s_unix.median_us < 1000);
  std::printf("%s\n", ProtoJson(json).c_str());
  d->reset();
  std::string rm = "rm -rf '" + dir + "'";
  return std::system(rm.c_str()) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ucode::daemon

int main(int argc, char** argv) { return ucode::daemon::Main(argc, argv); }
