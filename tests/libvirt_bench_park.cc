// bench_park_libvirt: park-all + release-all of N VMs x 2 vCPUs, the way operators pause
// VMs today (libvirt virDomainSuspend/virDomainResume of QEMU TCG domains, concurrently,
// each acknowledged by its lifecycle event) against our rendezvous (ucode-vmm processes on
// /dev/kvm through //vmm/rendezvous:coordinator), side by side for each N in one run.
// Then the guest agent: guest-ping round trip through libvirt to a real Linux guest, the
// agent's RSS inside that guest (read by a prepare hook from /proc/<agent>/smaps_rollup), and
// the static binary's size.
//
// What each side's "release" covers: the rendezvous waits until every vCPU has re-entered
// KVM_RUN; libvirt's resume returns when QEMU answered `cont` and the RESUMED event
// arrived (QEMU does not wait for its vCPU threads to run). The firmware-only QEMU
// domains are idle (halted), so the ucode-vmm guests default to `halt` as well.
//
//   bazel run //tests:bench_park_libvirt -- [--rounds=10] [--counts=1,4,8]
//       [--libvirt=daemon|embed] [--agent=false]
//
// Needs root, QEMU, libvirt and /dev/kvm (tools/install-deps). The QEMU domains are
// firmware-only (q35, no kernel: SeaBIOS finds nothing to boot and waits), which is all
// suspend/resume timing needs. Prints a table and one JSON line; medians of --rounds
// after two warm-up rounds. Timings are never asserted anywhere.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "host/base/private_files.h"
#include "tests/libvirt_guest/guest_lab.h"
#include "vmm/libvirt/agent_call.h"
#include "vmm/rendezvous/coordinator.h"

ABSL_FLAG(int, rounds, 10, "measured rounds per point (at least 10; the median is reported)");
ABSL_FLAG(std::string, counts, "1,4,8", "numbers of VMs");
ABSL_FLAG(int, vcpus, 2, "vCPUs per VM");
ABSL_FLAG(std::string, libvirt, "daemon",
          "daemon: a private libvirtd, reached over its socket as qemu:///system would be; "
          "embed: the QEMU driver inside this process");
ABSL_FLAG(std::string, program, "halt",
          "ucode-vmm guest program: halt (idle, like the firmware-only QEMU domains) or spin "
          "(every vCPU busy: on 2 cores the release then waits for the scheduler)");
ABSL_FLAG(bool, agent, true, "also boot a Linux guest and measure the agent");
ABSL_FLAG(std::string, ucode_agent, "", "the ucode-agent binary (set by BUILD)");
ABSL_FLAG(std::string, build_initramfs, "", "//tests/linux_guest:build_initramfs (set by BUILD)");
ABSL_FLAG(std::string, render_domain_xml, "", "//tests/linux_guest:render_domain_xml (set by BUILD)");

namespace ucode::testing {
namespace {

constexpr int kWarmup = 2;

struct Sample {
  std::vector<double> park_us, release_us, total_us;
  int failures = 0;
};

struct Point {
  int vms = 0;
  double lv_park = 0, lv_release = 0, lv_total = 0;
  double rv_park = 0, rv_release = 0, rv_total = 0;
  int lv_failures = 0, rv_failures = 0;
  [[nodiscard]] double ratio() const { return rv_total > 0 ? lv_total / rv_total : 0; }
};

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double Us(absl::Duration d) { return absl::ToDoubleMicroseconds(d); }

std::string TinyDomainXml(const std::string& name, int vcpus) {
  return absl::StrCat("<domain type='qemu'><name>", name, "</name>",
                      "<memory unit='MiB'>64</memory><vcpu>", vcpus, "</vcpu>",
                      "<os><type arch='x86_64' machine='q35'>hvm</type></os>",
                      "<devices><memballoon model='none'/></devices></domain>");
}

// N domains parked and released together, `rounds` times.
Sample MeasureLibvirt(libvirt::Connection& conn, const std::vector<libvirt::Domain>& doms,
                      int rounds) {
  Sample s;
  for (int i = -kWarmup; i < rounds; ++i) {
    const absl::Time t0 = absl::Now();
    std::vector<libvirt::DomainOpResult> parked = conn.SuspendAll(doms, absl::Seconds(30));
    const absl::Time t1 = absl::Now();
    std::vector<libvirt::DomainOpResult> released = conn.ResumeAll(doms, absl::Seconds(30));
    const absl::Time t2 = absl::Now();
    bool ok = true;
    for (const auto& r : parked) ok &= r.status.ok() && !r.already_in_state;
    for (const auto& r : released) ok &= r.status.ok() && !r.already_in_state;
    if (!ok) {
      ++s.failures;
      continue;
    }
    if (i < 0) continue;
    s.park_us.push_back(Us(t1 - t0));
    s.release_us.push_back(Us(t2 - t1));
    s.total_us.push_back(Us(t2 - t0));
  }
  return s;
}

absl::StatusOr<Sample> MeasureRendezvous(int vms, int vcpus, int rounds) {
  std::vector<rendezvous::VmSpec> specs;
  for (int i = 0; i < vms; ++i) {
    specs.push_back({.name = absl::StrCat("r", i), .program = absl::GetFlag(FLAGS_program),
                     .vcpus = vcpus});
  }
  rendezvous::CoordinatorOptions copts;
  copts.deadman = absl::Seconds(5);
  // Fresh per fleet: VMM logs are created O_EXCL (vmm_process.h).
  absl::StatusOr<std::string> log_dir = MakePrivateDir("", "ucode-bench-park-logs-");
  if (!log_dir.ok()) return log_dir.status();
  copts.log_dir = *log_dir;
  absl::StatusOr<std::unique_ptr<rendezvous::Coordinator>> c =
      rendezvous::Coordinator::Start(specs, copts);
  if (!c.ok()) return c.status();
  if (absl::Status st = (*c)->WaitGuestsRunning(absl::Seconds(30)); !st.ok()) return st;
  Sample s;
  for (int i = -kWarmup; i < rounds; ++i) {
    const absl::Time t0 = absl::Now();
    absl::Status parked = (*c)->Park(absl::Seconds(2));
    const absl::Time t1 = absl::Now();
    absl::Status released = (*c)->Release(absl::Seconds(2));
    const absl::Time t2 = absl::Now();
    if (!parked.ok() || !released.ok()) {
      ++s.failures;
      continue;
    }
    if (i >= 0) {
      s.park_us.push_back(Us(t1 - t0));
      s.release_us.push_back(Us(t2 - t1));
      s.total_us.push_back(Us(t2 - t0));
    }
    absl::SleepFor(absl::Milliseconds(5));  // guests run between rendezvous
  }
  (void)(*c)->Shutdown();
  return s;
}

struct AgentFigures {
  bool measured = false;
  std::string error;
  double ping_us = 0;
  long rss_kib = -1, anon_kib = -1;
  long binary_bytes = -1;
};

long StatusKib(const std::string& text, const std::string& key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, key)) continue;
    long v = 0;
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (!words.empty() && absl::SimpleAtoi(words[0], &v)) return v;
  }
  return -1;
}

// Boots one Linux guest whose prepare hook prints the agent's resident memory. From
// /proc/PID/smaps_rollup, which walks the page tables: /proc/PID/status VmRSS is kept in
// per-thread batches on the guest's 6.1 kernel (SPLIT_RSS_COUNTING, removed in 6.2) and
// reads ~4 kB for a process this small.
AgentFigures MeasureAgent(GuestLab& lab, int rounds) {
  AgentFigures f;
  struct stat st{};
  if (stat(absl::GetFlag(FLAGS_ucode_agent).c_str(), &st) == 0) f.binary_bytes = st.st_size;
  BootOptions boot;
  boot.agent_args = {"--prepare-dir", "/etc/bench/prepare.d"};
  boot.files = {{"/etc/bench/prepare.d/10-rss",
                 "#!/bin/sh\ngrep -E '^(Rss|Pss|Anonymous):' /proc/$PPID/smaps_rollup\n"}};
  absl::StatusOr<libvirt::Domain> dom = lab.Boot("agent-guest", boot);
  if (!dom.ok()) {
    f.error = std::string(dom.status().message());
    return f;
  }
  if (absl::Status s = lab.connection().WaitForAgent(*dom, absl::Seconds(240)); !s.ok()) {
    f.error = std::string(s.message());
    return f;
  }
  std::vector<double> ping;
  for (int i = -kWarmup; i < rounds; ++i) {
    libvirt::AgentCallResult r =
        libvirt::CallAgent(*dom, R"({"execute":"guest-ping"})", absl::Seconds(10));
    if (r.outcome != libvirt::AgentOutcome::kReturned) {
      f.error = std::string(r.status.message());
      return f;
    }
    if (i >= 0) ping.push_back(Us(r.elapsed));
  }
  f.ping_us = Median(ping);
  libvirt::AgentCallResult prep = libvirt::CallAgent(
      *dom, R"({"execute":"guest-ucode-prepare","arguments":{"deadline-ms":5000}})",
      absl::Seconds(10));
  nlohmann::json reply = nlohmann::json::parse(prep.reply, nullptr, false);
  if (reply.is_object() && reply["return"]["hooks"].is_array() && !reply["return"]["hooks"].empty()) {
    const std::string out = reply["return"]["hooks"][0].value("output", "");
    std::fprintf(stderr, "agent's /proc/PID/smaps_rollup, read by its prepare hook:\n%s\n", out.c_str());
    f.rss_kib = StatusKib(out, "Rss:");
    f.anon_kib = StatusKib(out, "Anonymous:");
  } else {
    f.error = absl::StrCat("prepare hook output missing: ", prep.reply, prep.status.ToString());
  }
  f.measured = f.error.empty();
  return f;
}

int Run() {
  const int rounds = std::max(10, absl::GetFlag(FLAGS_rounds));
  const int vcpus = absl::GetFlag(FLAGS_vcpus);
  std::vector<int> counts;
  for (absl::string_view c : absl::StrSplit(absl::GetFlag(FLAGS_counts), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(c, &n) || n < 1) {
      std::fprintf(stderr, "--counts: bad number '%s'\n", std::string(c).c_str());
      return 2;
    }
    counts.push_back(n);
  }
  GuestLabOptions lo;
  lo.daemon = absl::GetFlag(FLAGS_libvirt) == "daemon";
  lo.build_initramfs = absl::GetFlag(FLAGS_build_initramfs);
  lo.render_domain_xml = absl::GetFlag(FLAGS_render_domain_xml);
  if (absl::GetFlag(FLAGS_agent)) lo.agent = absl::GetFlag(FLAGS_ucode_agent);
  lo.memory_mib = 160;
  absl::StatusOr<std::unique_ptr<GuestLab>> lab = GuestLab::Create(lo);
  if (!lab.ok()) {
    std::fprintf(stderr, "bench_park_libvirt: %s\n", std::string(lab.status().message()).c_str());
    return 1;
  }
  libvirt::Connection& conn = (*lab)->connection();
  std::vector<libvirt::Domain> doms;
  std::vector<Point> points;
  for (int n : counts) {
    while (static_cast<int>(doms.size()) < n) {
      const std::string name = absl::StrCat("park", doms.size());
      absl::StatusOr<libvirt::Domain> d = (*lab)->BootXml(name, TinyDomainXml(name, vcpus));
      if (!d.ok()) {
        std::fprintf(stderr, "boot %s: %s\n", name.c_str(), std::string(d.status().message()).c_str());
        return 1;
      }
      doms.push_back(*std::move(d));
    }
    std::vector<libvirt::Domain> these;
    for (int i = 0; i < n; ++i) these.push_back(*doms[i].Duplicate());
    std::fprintf(stderr, "N=%d: libvirt ...\n", n);
    Sample lv = MeasureLibvirt(conn, these, rounds);
    std::fprintf(stderr, "N=%d: rendezvous ...\n", n);
    absl::StatusOr<Sample> rv = MeasureRendezvous(n, vcpus, rounds);
    if (!rv.ok()) {
      std::fprintf(stderr, "rendezvous N=%d: %s\n", n, std::string(rv.status().message()).c_str());
      return 1;
    }
    points.push_back({.vms = n, .lv_park = Median(lv.park_us), .lv_release = Median(lv.release_us),
                      .lv_total = Median(lv.total_us), .rv_park = Median(rv->park_us),
                      .rv_release = Median(rv->release_us), .rv_total = Median(rv->total_us),
                      .lv_failures = lv.failures, .rv_failures = rv->failures});
  }
  for (const libvirt::Domain& d : doms) (void)conn.Destroy(d);  // quiet machine for the agent
  AgentFigures agent;
  if (absl::GetFlag(FLAGS_agent)) agent = MeasureAgent(**lab, rounds);

  std::printf("park-all + release-all, %d vCPUs per VM, median of %d rounds (libvirt: %s; "
              "ucode-vmm guests: %s)\n",
              vcpus, rounds, lo.daemon ? "private libvirtd" : "embedded driver",
              absl::GetFlag(FLAGS_program).c_str());
  std::printf("%4s  %12s %12s %12s  %12s %12s %12s  %8s\n", "VMs", "libvirt us", "suspend us",
              "resume us", "rendezv. us", "park us", "release us", "ratio");
  nlohmann::json jp = nlohmann::json::array();
  for (const Point& p : points) {
    std::printf("%4d  %12.1f %12.1f %12.1f  %12.1f %12.1f %12.1f  %7.0fx\n", p.vms, p.lv_total,
                p.lv_park, p.lv_release, p.rv_total, p.rv_park, p.rv_release, p.ratio());
    jp.push_back({{"vms", p.vms}, {"vcpus_per_vm", vcpus},
                  {"libvirt_us", p.lv_total}, {"libvirt_suspend_us", p.lv_park},
                  {"libvirt_resume_us", p.lv_release}, {"rendezvous_us", p.rv_total},
                  {"rendezvous_park_us", p.rv_park}, {"rendezvous_release_us", p.rv_release},
                  {"ratio", p.ratio()}, {"libvirt_failures", p.lv_failures},
                  {"rendezvous_failures", p.rv_failures}});
  }
  nlohmann::json ja = {{"measured", agent.measured}, {"binary_bytes", agent.binary_bytes}};
  if (agent.measured) {
    std::printf("agent: guest-ping through libvirt %.1f us (median), RSS %ld KiB (%ld KiB "
                "anonymous) in the guest, static binary %ld bytes\n",
                agent.ping_us, agent.rss_kib, agent.anon_kib, agent.binary_bytes);
    ja["ping_median_us"] = agent.ping_us;
    ja["rss_kib"] = agent.rss_kib;
    ja["anon_kib"] = agent.anon_kib;
  } else if (!agent.error.empty()) {
    std::printf("agent: not measured: %s\n", agent.error.c_str());
    ja["error"] = agent.error;
  }
  double ratio4 = 0;
  for (const Point& p : points) {
    if (p.vms == 4) ratio4 = p.ratio();
  }
  nlohmann::json j = {{"bench", "park_libvirt"},
                      {"rounds", rounds},
                      {"libvirt", lo.daemon ? "daemon" : "embed"},
                      {"program", absl::GetFlag(FLAGS_program)},
                      {"points", jp},
                      {"ratio_at_4", ratio4},
                      {"target_ratio_at_4", 50},
                      {"agent", ja}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace ucode::testing

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return ucode::testing::Run();
}
