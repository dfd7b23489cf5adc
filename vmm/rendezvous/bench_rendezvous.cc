// bench_rendezvous: park-all, release-all and coordination overhead of the cross-VM
// rendezvous for several VMs x vCPUs shapes, beside the physical floor measured first in
// the same run, and the RSS of a ucode-vmm process.
//
//   bazel run -c opt //vmm/rendezvous:bench_rendezvous -- [--rounds=20] [--shapes=1x1,4x2,...]
//
// Prints a table and one JSON line. Guests run `spin`. VMM logs go to a fresh private
// directory (mkdtemp, 0700), printed on stderr.
//
// The floor (bench_floor.h): one bare KVM vCPU in this process: kick -> parked, release
// -> re-entering KVM_RUN, release -> guest progress. A shape's floor is the bare figure x
// max(1, vCPUs / cores); the x/fl columns divide the shape's figure by it: park by the
// kick floor, release by the re-entry floor, overhead by kick + re-entry, the median
// guest gap by kick + guest progress.
//
// Two kinds of round per shape, each the product's own sequence over a
// CoordinatorGuestGroup on the emulated host (the demo's 2x4x2 host, unstaged):
//   - none: orchestrator::SyncGuestViews (park, set the view the host runs, release; no
//     activation), so the coordination overhead (ovh_us) is the whole time from the first
//     vCPU out of guest mode to the last one back in;
//   - host (host_ovh_us): orchestrator::RunUpdate, strict, with the host late load of a
//     generated image of --image_kib; overhead is the time held minus the load's
//     activation window (window_us: all CPUs arrived -> last one done).
// park_us, release_us and the time held come from the vCPUs' own timestamps.
// release_us: release command -> last vCPU re-entering KVM_RUN, each having written and
// read back MSR 0x8B on the way (there is no separate set-revision step).
// What the guests measured (no-op rounds), as TSC gaps between consecutive reads:
//   - gap: the gap spanning the park (the guest's blackout);
//   - base: the largest gap in the window before the park (opened by the group's
//     Prepare(), held open until every vCPU measured a gap in it and at least --gap_ms),
//     with no hold inside: ordinary scheduling.
// *_med is the median over vCPUs and rounds, *_max the median over rounds of the worst
// vCPU. With more vCPUs than cores both include waiting for a core; gap/base compares
// the blackout's worst vCPU with the worst ordinary gap.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "host/base/private_files.h"
#include "host/base/read_file.h"
#include "host/microcode/image_generator.h"
#include "host/platform/emulated_platform.h"
#include "vmm/orchestrator/coordinator_group.h"
#include "vmm/orchestrator/update_operation.h"
#include "vmm/rendezvous/bench_floor.h"
#include "vmm/rendezvous/bench_points.h"
#include "vmm/rendezvous/coordinator.h"

ABSL_FLAG(int, rounds, 20, "rendezvous per shape (the median is reported)");
ABSL_FLAG(std::string, shapes, "1x1,4x2,8x2,16x4,32x4", "VMs x vCPUs per VM");
ABSL_FLAG(std::string, program, "spin", "guest program");
ABSL_FLAG(int, gap_ms, 5,
          "guests run at least this long between rendezvous (the baseline window)");
ABSL_FLAG(int, image_kib, 64, "size of the generated image the host-load rounds activate");

namespace ucode::rendezvous {
namespace {

using bench::Median;
using bench::Us;

long RssKib(pid_t pid) {
  absl::StatusOr<std::string> status = ReadTextFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return -1;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    long kib;
    if (absl::ConsumePrefix(&line, "VmRSS:") && absl::ConsumeSuffix(&line, "kB") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kib)) {
      return kib;
    }
  }
  return -1;
}

// The emulated host the rounds run on: the demo's 2x4x2 host.
struct Host {
  std::unique_ptr<platform::EmulatedPlatform> platform;
  uint32_t revision = 0;  // running on every CPU
};

absl::StatusOr<Host> MakeHost() {
  platform::EmulatedHostConfig config = platform::DemoHostConfig();
  auto p = platform::EmulatedPlatform::Create(config);
  if (!p.ok()) return p.status();
  return Host{std::move(*p), config.revision};
}

// A loaded host may leave a vCPU without a core for seconds; waits here are not timed.
constexpr absl::Duration kGuestPatience = absl::Seconds(30);

// Every round is the product's own sequence (orchestrator::RunUpdate or SyncGuestViews
// over a CoordinatorGuestGroup), unstaged; waits for the guests happen outside the hold.
orchestrator::UpdateOptions RoundOptions(orchestrator::UpdateMode mode) {
  orchestrator::UpdateOptions o;
  o.operation = "bench";
  o.mode = mode;
  o.stage = false;
  o.park_deadline = absl::Seconds(2);
  o.step_deadline = absl::Seconds(2);
  o.guests_running_timeout = kGuestPatience;
  o.guest_view_timeout = kGuestPatience;
  return o;
}

// Lets the guests run in the baseline window Prepare() opened (begin_step of the park,
// the last step before it): until every vCPU has measured at least one gap there (with
// more vCPUs than cores a vCPU may wait longer than --gap_ms for a core, and a window it
// never ran in would say nothing), and at least --gap_ms.
absl::Status RunBaselineWindow(Coordinator& c) {
  absl::StatusOr<std::vector<VmResult>> start = c.ReadGuestViews();
  if (!start.ok()) return start.status();
  const absl::Time min_end = absl::Now() + absl::Milliseconds(absl::GetFlag(FLAGS_gap_ms));
  const absl::Time end = absl::Now() + kGuestPatience;
  for (;;) {
    absl::StatusOr<std::vector<VmResult>> now = c.ReadGuestViews();
    if (!now.ok()) return now.status();
    bool all = true;
    for (size_t i = 0; i < now->size(); ++i) {
      for (size_t j = 0; j < (*now)[i].vcpus.size(); ++j) {
        all &= (*now)[i].vcpus[j].iterations >= (*start)[i].vcpus[j].iterations + 2;
      }
    }
    if (all && absl::Now() >= min_end) return absl::OkStatus();
    if (absl::Now() >= end) return absl::DeadlineExceededError("guests did not run in the window");
    absl::SleepFor(absl::Milliseconds(1));
  }
}

// What the vCPUs' own timestamps say about the last park and release (not when this
// thread noticed).
struct Held {
  double park_us, release_us, held_us;
};

Held HeldFromArea(const Coordinator& c) {
  int64_t first_out = INT64_MAX, last_parked = 0, last_back = 0;
  const Area& a = c.area();
  for (int i = 0; i < kMaxVms && a.vm[i].pid.load() != 0; ++i) {
    for (uint32_t j = 0; j < a.vm[i].vcpus; ++j) {
      first_out = std::min(first_out, a.vm[i].vcpu[j].kicked_out_ns);
      last_parked = std::max(last_parked, a.vm[i].vcpu[j].parked_ns);
      last_back = std::max(last_back, a.vm[i].vcpu[j].resumed_ns);
    }
  }
  return Held{.park_us = (last_parked - c.last_park_ns()) / 1e3,
              .release_us = Us(c.last_release_all()),
              .held_us = (last_back - first_out) / 1e3};
}

// No activation: SyncGuestViews parks every vCPU, sets the view the host runs and
// releases, so the time held is all coordination overhead.
absl::StatusOr<Held> NoActivationRound(Coordinator& c, orchestrator::GuestGroup& group,
                                       Host& host) {
  orchestrator::UpdateCallbacks cb;
  cb.begin_step = [&](orchestrator::Step step, absl::string_view) {
    return step == v1::STEP_PARKED ? RunBaselineWindow(c) : absl::OkStatus();
  };
  orchestrator::GuestGroup* groups[] = {&group};
  orchestrator::UpdateReport r = orchestrator::SyncGuestViews(
      *host.platform, groups, RoundOptions(v1::UPDATE_MODE_STRICT), cb);
  if (!r.status.ok()) return r.status;
  // The view did not change, so nothing above waited for the guests to run again.
  if (absl::Status s = c.WaitGuestsRanAfterPark(kGuestPatience); !s.ok()) return s;
  return HeldFromArea(c);
}

// One strict RunUpdate with the emulated host late load of a generated image of
// --image_kib: the host_* figures. Held time comes from the vCPUs' own timestamps;
// host_outside_us is parked -> load returned, minus the activation window.
absl::StatusOr<Point> HostLoadRound(Coordinator& c, orchestrator::GuestGroup& group,
                                        Host& host) {
  microcode::GeneratorOptions g;
  g.revision = host.revision + 1;
  g.min_req_revision = host.revision;
  g.data_size = static_cast<size_t>(absl::GetFlag(FLAGS_image_kib)) * 1024 - microcode::kHeaderSize;
  auto image = microcode::GenerateImage(g);
  if (!image.ok()) return image.status();
  orchestrator::GuestGroup* groups[] = {&group};
  orchestrator::UpdateReport r = orchestrator::RunUpdate(
      *host.platform, *std::move(image), groups, RoundOptions(v1::UPDATE_MODE_STRICT));
  if (r.host_touched) host.revision = g.revision;
  if (!r.status.ok()) return r.status;
  const Held held = HeldFromArea(c);
  const double window = Us(r.host->load.activation_window);
  return Point{.host_overhead_us = held.held_us - window,
               .host_window_us = window,
               .host_park_us = held.park_us,
               .host_release_us = held.release_us,
               .host_outside_us = Us(r.host_call) - window};
}

absl::StatusOr<Point> Measure(int vms, int vcpus, const std::string& log_dir, long* rss_kib) {
  absl::StatusOr<Host> host = MakeHost();
  if (!host.ok()) return host.status();
  std::vector<VmSpec> specs;
  for (int i = 0; i < vms; ++i) {
    VmSpec s;
    s.name = absl::StrCat("b", i);
    s.program = absl::GetFlag(FLAGS_program);
    s.vcpus = vcpus;
    s.memory_mib = 4;
    s.initial_revision = host->revision;
    specs.push_back(s);
  }
  CoordinatorOptions copts;
  copts.deadman = absl::Seconds(5);
  // Fresh per fleet: VMM logs are created O_EXCL (vmm_process.h).
  absl::StatusOr<std::string> fleet_dir =
      MakePrivateDir(log_dir, absl::StrCat("fleet-", vms, "x", vcpus, "-"));
  if (!fleet_dir.ok()) return fleet_dir.status();
  copts.log_dir = *fleet_dir;
  auto c = Coordinator::Start(specs, copts);
  if (!c.ok()) return c.status();
  if (absl::Status s = (*c)->WaitGuestsRunning(absl::Seconds(30)); !s.ok()) return s;
  if (rss_kib != nullptr) {
    std::vector<double> r;
    for (pid_t p : (*c)->pids()) r.push_back(RssKib(p));
    *rss_kib = static_cast<long>(Median(r));
  }
  orchestrator::CoordinatorGuestGroup group(**c, specs);
  Point pt;
  pt.vms = vms;
  pt.vcpus = vcpus;
  std::vector<Point> plain, hosted;     // the figures of each measured round, by kind
  std::vector<double> gaps, base_gaps;  // per vCPU and measured round
  // Two warm-up rounds (the first host load also creates the stoppers), then the measured
  // ones; a failed round is logged and counted.
  auto run_rounds = [&](const char* what, auto round) {
    for (int i = -2; i < absl::GetFlag(FLAGS_rounds); ++i) {
      if (absl::Status s = round(/*measured=*/i >= 0); !s.ok()) {
        std::fprintf(stderr, "%dx%d %sround %d: %s\n", vms, vcpus, what, i,
                     std::string(s.message()).c_str());
        ++pt.failures;
      }
    }
  };
  run_rounds("", [&](bool measured) -> absl::Status {
    absl::StatusOr<Held> held = NoActivationRound(**c, group, *host);
    absl::StatusOr<std::vector<VmResult>> views =
        held.ok() ? (*c)->ReadGuestViews() : held.status();
    if (!views.ok()) return views.status();
    if (!measured) return absl::OkStatus();
    double worst = 0, worst_base = 0;
    for (const VmResult& vm : *views) {
      for (const VcpuView& v : vm.vcpus) {
        gaps.push_back(Us(v.park_gap));
        base_gaps.push_back(Us(v.baseline_gap));
      }
      worst = std::max(worst, Us(vm.guest_blackout));
      worst_base = std::max(worst_base, Us(vm.baseline_max_gap));
    }
    plain.push_back({.park_us = held->park_us, .release_us = held->release_us,
                     .overhead_us = held->held_us, .blackout_max_us = worst,
                     .baseline_max_us = worst_base});
    return absl::OkStatus();
  });
  run_rounds("host-load ", [&](bool measured) -> absl::Status {
    absl::StatusOr<Point> r = HostLoadRound(**c, group, *host);
    if (!r.ok()) return r.status();
    if (measured) hosted.push_back(*r);
    absl::SleepFor(absl::Milliseconds(absl::GetFlag(FLAGS_gap_ms)));
    return absl::OkStatus();
  });
  // Each figure: the median over the measured rounds of its kind.
  auto medians = [&pt](const std::vector<Point>& rounds,
                       std::initializer_list<double Point::*> figures) {
    for (double Point::*f : figures) {
      std::vector<double> v;
      for (const Point& r : rounds) v.push_back(r.*f);
      pt.*f = Median(std::move(v));
    }
  };
  medians(plain, {&Point::park_us, &Point::release_us, &Point::overhead_us,
                  &Point::blackout_max_us, &Point::baseline_max_us});
  medians(hosted, {&Point::host_overhead_us, &Point::host_window_us, &Point::host_park_us,
                   &Point::host_release_us, &Point::host_outside_us});
  pt.blackout_med_us = Median(gaps);
  pt.baseline_med_us = Median(base_gaps);
  absl::Status s = (*c)->Shutdown();
  if (!s.ok()) std::fprintf(stderr, "shutdown: %s\n", std::string(s.message()).c_str());
  return pt;
}

int Main() {
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  std::vector<std::pair<int, int>> shapes;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_shapes), ',')) {
    std::vector<std::string> p = absl::StrSplit(s, 'x');
    int a, b;
    if (p.size() != 2 || !absl::SimpleAtoi(p[0], &a) || !absl::SimpleAtoi(p[1], &b)) {
      std::fprintf(stderr, "bad shape '%s'\n", std::string(s).c_str());
      return 2;
    }
    shapes.push_back({a, b});
  }
  // A private log directory: never a fixed, guessable path in /tmp.
  absl::StatusOr<std::string> made = MakePrivateDir("", "ucode-bench-rendezvous-");
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  const std::string log_dir = *made;
  std::fprintf(stderr, "ucode-vmm logs: %s\n", log_dir.c_str());

  absl::StatusOr<BareVcpuFloor> floor = MeasureBareVcpuFloor(absl::GetFlag(FLAGS_rounds));
  if (!floor.ok()) {
    std::fprintf(stderr, "floor: %s\n", floor.status().ToString().c_str());
    return 1;
  }
  long rss_kib = -1;
  auto rss = Measure(1, 2, log_dir, &rss_kib);  // 2 vCPUs, 4 MiB guest memory
  if (!rss.ok()) std::fprintf(stderr, "rss: %s\n", rss.status().ToString().c_str());

  std::vector<Point> points;
  for (auto [vms, vcpus] : shapes) {
    auto pt = Measure(vms, vcpus, log_dir, nullptr);
    if (!pt.ok()) {
      std::fprintf(stderr, "%dx%d: %s\n", vms, vcpus, pt.status().ToString().c_str());
      continue;
    }
    ApplyFloor(*floor, cores, *pt);
    points.push_back(*pt);
  }

  PrintTable(points, *floor, cores, absl::GetFlag(FLAGS_rounds), absl::GetFlag(FLAGS_program));
  std::vector<std::string> json;
  for (const Point& p : points) json.push_back(PointJson(p));
  std::printf("ucode-vmm RSS (2 vCPUs, 4 MiB): %ld KiB\n", rss_kib);
  std::printf("{\"bench\":\"rendezvous\",\"cores\":%d,\"rounds\":%d,"
              "\"floor\":{\"kick_to_parked_us\":%.1f,\"release_to_reentry_us\":%.1f,"
              "\"release_to_progress_us\":%.1f},\"vmm_rss_kib\":%ld,\"points\":[%s]}\n",
              cores, absl::GetFlag(FLAGS_rounds), floor->kick_to_parked_us,
              floor->release_to_reentry_us, floor->release_to_progress_us, rss_kib,
              absl::StrJoin(json, ",").c_str());
  return 0;
}

}  // namespace
}  // namespace ucode::rendezvous

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ucode::rendezvous::Main();
}
