// bench_staging: the staging driver's throughput and cost, separated from the mailbox
// model's own cost, and the host-load critical path staged vs unstaged, on the emulated
// host with the real 06-8f-08 and 06-ad-01 images. Prints tables and one JSON line.
//
//   bazel run -c opt //host/staging:bench_staging [-- --runs=N]
//   host/staging/callgrind-staging   (instructions per staged dword; uses --callgrind)
//
// How the driver's cost is separated from the model's: one staging through a recording
// window captures the exact register-access sequence; the model alone then replays it
// (direct calls, no driver). driver = run(driver + model) - run(model replaying the same
// accesses), measured in thread CPU time (what the machine's load does not inflate) and
// wall time, as the median of paired runs. With a 100 ns access cost both sides pay the
// same charged busy-wait, so the difference is the driver's own work.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/microcode/microcode_image.h"
#include "host/microcode/release_dir.h"
#include "host/platform/emulated_platform.h"
#include "host/platform/mailbox_model.h"
#include "host/staging/staging_driver.h"
#include "vmm/orchestrator/update_operation.h"

namespace ucode {
namespace {

using platform::MailboxModel;

constexpr const char* kFiles[] = {"06-8f-08", "06-ad-01"};
constexpr absl::Duration kSlowAccess = absl::Nanoseconds(100);

double CpuSeconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Sample {
  double wall = 0;  // seconds
  double cpu = 0;   // seconds of CPU time (thread or process, as the caller says)
};

template <typename Fn>
Sample Time(clockid_t cpu_clock, Fn fn) {
  const double c0 = CpuSeconds(cpu_clock);
  const absl::Time w0 = absl::Now();
  fn();
  return {absl::ToDoubleSeconds(absl::Now() - w0), CpuSeconds(cpu_clock) - c0};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

platform::EmulatedHostConfig HostFor(const microcode::MicrocodeHeader& h, int packages, int cores,
                                     int threads, platform::MailboxBehavior mailbox = {}) {
  platform::EmulatedHostConfig c;
  c.packages = packages;
  c.cores_per_package = cores;
  c.threads_per_core = threads;
  c.signature = h.signature;
  c.platform_id = static_cast<uint32_t>(__builtin_ctz(h.platform_flags));
  c.revision = std::max(h.min_req_revision, h.revision - 1);
  c.mailbox = mailbox;
  return c;
}

// ---- Driver vs model ----

struct Access {
  uint32_t value;
  uint16_t offset;
  uint16_t write;
};

// Passes every access to the model and logs it (the sequence the replay repeats).
class RecordingWindow : public platform::MmioWindow {
 public:
  RecordingWindow(MailboxModel& model, std::vector<Access>& log) : model_(model), log_(log) {}
  uint32_t Read32(uint32_t offset) override {
    log_.push_back({0, static_cast<uint16_t>(offset), 0});
    return model_.Read32(offset);
  }
  void Write32(uint32_t offset, uint32_t value) override {
    log_.push_back({value, static_cast<uint16_t>(offset), 1});
    model_.Write32(offset, value);
  }

 private:
  MailboxModel& model_;
  std::vector<Access>& log_;
};

// The model alone: the recorded accesses as direct calls, no driver logic in between.
__attribute__((noinline)) uint32_t ReplayAccesses(MailboxModel& model,
                                                  const std::vector<Access>& log) {
  uint32_t sink = 0;
  for (const Access& a : log) {
    if (a.write) {
      model.Write32(a.offset, a.value);
    } else {
      sink += model.Read32(a.offset);
    }
  }
  return sink;
}

// The model raises READY at GO and never shows a stale one, so the driver polls at once
// here: the benchmark measures the per-dword path, not the kernel-order 1 ms poll interval
// (which the product uses, and which dominates wall time on a real device).
staging::StagingOptions ImmediatePoll() {
  staging::StagingOptions options;
  options.poll_interval = absl::ZeroDuration();
  return options;
}

absl::Status StageOnce(platform::EmulatedPlatform& host, absl::Span<const uint8_t> image) {
  auto window = host.MapMmio(host.config().mailbox_base, platform::kMboxWindowSize);
  if (!window.ok()) return window.status();
  staging::PackageStaging r;
  return staging::StageThroughMailbox(**window, image, ImmediatePoll(), r);
}

struct Split {
  uint64_t accesses = 0;
  uint64_t dwords = 0;
  double total_cpu = 0, model_cpu = 0, driver_cpu = 0;  // medians, seconds
  double total_wall = 0, model_wall = 0, driver_wall = 0;
  double floor = 0;  // accesses x access cost, seconds
  bool ok = true;

  double DriverShareCpu() const { return driver_cpu / total_cpu; }
  double DriverShareWall() const { return driver_wall / total_wall; }
};

Split MeasureSplit(const microcode::MicrocodeImage& image, absl::Duration cost, int runs) {
  Split s;
  s.dwords = image.bytes.size() / 4;
  std::vector<Access> log;
  {
    MailboxModel model({.access_cost = absl::ZeroDuration()});
    RecordingWindow recorder(model, log);
    staging::PackageStaging r;
    s.ok = staging::StageThroughMailbox(recorder, image.bytes, ImmediatePoll(), r).ok();
  }
  s.accesses = log.size();
  s.floor = absl::ToDoubleSeconds(cost) * static_cast<double>(s.accesses);
  platform::EmulatedHostConfig config = HostFor(image.header, 1, 1, 1, {.access_cost = cost});
  std::vector<double> tc, mc, dc, tw, mw, dw;
  for (int i = 0; i < runs; ++i) {
    auto host = platform::EmulatedPlatform::Create(config);
    const Sample total =
        Time(CLOCK_THREAD_CPUTIME_ID, [&] { s.ok &= StageOnce(**host, image.bytes).ok(); });
    MailboxModel alone({.access_cost = cost});
    const Sample model = Time(CLOCK_THREAD_CPUTIME_ID, [&] { ReplayAccesses(alone, log); });
    s.ok &= alone.HoldsStagedImage(image.bytes);
    tc.push_back(total.cpu), mc.push_back(model.cpu), dc.push_back(total.cpu - model.cpu);
    tw.push_back(total.wall), mw.push_back(model.wall), dw.push_back(total.wall - model.wall);
  }
  s.total_cpu = Median(tc), s.model_cpu = Median(mc), s.driver_cpu = Median(dc);
  s.total_wall = Median(tw), s.model_wall = Median(mw), s.driver_wall = Median(dw);
  return s;
}

// ---- Packages in parallel ----
//
// Wall time needs two idle cores, which a shared machine rarely gives (the scheduler's
// autogroup shares one slice among all of a session's threads). So each package also
// records, on the thread that stages it, the CPU time and voluntary context switches
// (getrusage RUSAGE_THREAD) of its transfer, from the first to the last transaction. A
// lock, a shared callback or a contended cache line that serialised the packages would
// show as blocking (switches) or as CPU time the sequential run does not spend. From the
// same figures, the wall time on two idle cores is max(longest package, total / 2).

struct alignas(64) PackageUse {  // one cache line per package thread
  double cpu = 0;     // thread CPU seconds of the transfer
  long switches = 0;  // voluntary context switches during the transfer
};

struct PackagesRun {
  Sample sample;  // the whole StageAllPackages call (process CPU)
  double cpu_total = 0, cpu_longest = 0;
  long switches = 0;  // most of any package
};

PackagesRun StagePackages(const microcode::MicrocodeImage& image, int packages, bool parallel,
                          bool& ok) {
  auto host = platform::EmulatedPlatform::Create(HostFor(image.header, packages, 1, 1));
  std::vector<PackageUse> use(packages);
  staging::StagingOptions options = ImmediatePoll();
  options.parallel = parallel;
  options.progress = [&use](const staging::StagingProgress& e) {
    if (e.chunks != 1 && !e.done) return;
    rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    const double cpu = CpuSeconds(CLOCK_THREAD_CPUTIME_ID);
    const double sign = e.chunks == 1 ? -1 : 1;  // first transaction: start; done: end
    use[e.package].cpu += sign * cpu;
    use[e.package].switches += static_cast<long>(sign) * ru.ru_nvcsw;
  };
  staging::StagingReport report;
  PackagesRun run;
  run.sample = Time(CLOCK_PROCESS_CPUTIME_ID,
                    [&] { report = staging::StageAllPackages(**host, image.bytes, options); });
  if (!report.all_staged()) {
    std::fprintf(stderr, "bench: %s\n", report.Summary().c_str());
    ok = false;
  }
  for (const PackageUse& u : use) {
    run.cpu_total += u.cpu;
    run.cpu_longest = std::max(run.cpu_longest, u.cpu);
    run.switches = std::max(run.switches, u.switches);
  }
  return run;
}

struct Packages {
  double one_wall = 0;                 // 1 package
  double par_wall = 0, seq_wall = 0;   // 4 packages
  double cores = 0;                    // process CPU / wall in the parallel run
  double cpu_ratio = 0;                // transfer CPU, parallel / sequential
  double projected_ratio = 0;          // max(longest, total / 2) parallel / total sequential
  long switches = 0;                   // voluntary, in any parallel transfer
  bool ok = true;
};

Packages MeasurePackages(const microcode::MicrocodeImage& image, int runs) {
  constexpr int kPackages = 4;
  Packages p;
  std::vector<double> one, pw, sw, cores, cpu, proj;
  for (int i = 0; i < runs; ++i) {  // interleaved, so that load changes hit all alike
    one.push_back(StagePackages(image, 1, true, p.ok).sample.wall);
    const PackagesRun par = StagePackages(image, kPackages, true, p.ok);
    const PackagesRun seq = StagePackages(image, kPackages, false, p.ok);
    pw.push_back(par.sample.wall), sw.push_back(seq.sample.wall);
    cores.push_back(par.sample.cpu / par.sample.wall);
    cpu.push_back(par.cpu_total / seq.cpu_total);
    proj.push_back(std::max(par.cpu_longest, par.cpu_total / 2) / seq.cpu_total);
    p.switches = std::max(p.switches, par.switches);
  }
  p.one_wall = Median(one), p.par_wall = Median(pw), p.seq_wall = Median(sw);
  p.cores = Median(cores), p.cpu_ratio = Median(cpu), p.projected_ratio = Median(proj);
  return p;
}

// ---- Host load on 2 x 8 x 2 ----

struct HostLoad {
  absl::Duration critical_path;  // modelled: longest WRMSR 0x79 of any primary
  absl::Duration window;         // measured wall time of the emulated rendezvous
  absl::Duration staging;        // wall time of staging (staged run)
  std::string parameters;
  std::string outcome;
};

HostLoad MeasureHostLoad(const microcode::MicrocodeImage& image,
                         const std::vector<uint8_t>& file, bool stage) {
  HostLoad h;
  auto host = platform::EmulatedPlatform::Create(HostFor(image.header, 2, 8, 2));
  orchestrator::UpdateOptions options;  // no VMs: the host-only load
  options.stage = stage;
  options.staging = ImmediatePoll();
  orchestrator::UpdateReport report = orchestrator::RunUpdate(**host, file, {}, options);
  h.outcome = std::string(report.status.message());
  if (!report.host) return h;
  const late_load::LateLoadResult& load = report.host->load;
  h.critical_path = load.modelled_critical_path;
  h.window = load.activation_window;
  if (report.staging) h.staging = report.staging->elapsed;
  h.parameters = load.model_parameters;
  if (report.status.ok()) h.outcome = load.summary;
  return h;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return absl::StrCat(a, " ", b, " ", c);
}

double Ms(double seconds) { return seconds * 1e3; }
double Ns(double seconds, uint64_t per) { return seconds * 1e9 / static_cast<double>(per); }

// One staging of each file on one package, nothing else: the run callgrind-staging
// counts instructions in (valgrind --toggle-collect on StageThroughMailbox).
int CallgrindMain(const std::string& dir, const std::string& only) {
  for (const char* name : kFiles) {
    if (!only.empty() && only != name) continue;
    auto file = microcode::ReadFileBytes(dir + "/" + name);
    if (!file.ok()) return 1;
    auto images = microcode::ParseBundleStrict(*file);
    if (!images.ok()) return 1;
    auto host = platform::EmulatedPlatform::Create(HostFor(images->front().header, 1, 1, 1));
    const absl::Status s = StageOnce(**host, images->front().bytes);
    const platform::MailboxStats stats = (*host)->mailbox(0).stats();
    std::printf("%s bytes=%zu dwords=%zu accesses=%lu status=%s\n", name,
                images->front().bytes.size(), images->front().bytes.size() / 4,
                static_cast<unsigned long>(stats.register_accesses), s.ToString().c_str());
  }
  return 0;
}

int Main(int argc, char** argv) {
  int runs = 5;
  bool callgrind = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (absl::StartsWith(argv[i], "--runs=") && absl::SimpleAtoi(argv[i] + 7, &runs) && runs > 0) {
    } else if (std::strcmp(argv[i], "--callgrind") == 0) {
      callgrind = true;
    } else if (absl::StartsWith(argv[i], "--file=")) {
      only = argv[i] + 7;
    } else {
      std::fprintf(stderr, "usage: bench_staging [--runs=N] [--callgrind [--file=NAME]]\n");
      return 2;
    }
  }
  absl::StatusOr<std::string> dir = microcode::FindReleaseDir();
  if (!dir.ok()) {
    std::fprintf(stderr, "bench_staging: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  if (callgrind) return CallgrindMain(*dir, only);

  std::printf("bench_staging: %d runs per figure (medians); %u CPUs; load average %s\n", runs,
              std::thread::hardware_concurrency(), LoadAverage().c_str());
  std::vector<std::string> json;
  std::vector<std::string> load_rows;
  std::string parameters;
  for (const char* name : kFiles) {
    absl::StatusOr<std::vector<uint8_t>> file = microcode::ReadFileBytes(*dir + "/" + name);
    if (!file.ok()) continue;
    auto images = microcode::ParseBundleStrict(*file);
    if (!images.ok()) continue;
    const microcode::MicrocodeImage& image = images->front();
    const size_t size = image.bytes.size();

    const Packages pk = MeasurePackages(image, runs);
    const Split zero = MeasureSplit(image, absl::ZeroDuration(), runs);
    const Split slow = MeasureSplit(image, kSlowAccess, runs);
    const HostLoad unstaged = MeasureHostLoad(image, *file, false);
    const HostLoad staged = MeasureHostLoad(image, *file, true);
    if (!unstaged.parameters.empty()) parameters = unstaged.parameters;

    std::printf("\n%s: %zu KiB image, %lu dwords, %lu register accesses (%.4f per dword)%s\n", name,
                size / 1024, static_cast<unsigned long>(zero.dwords),
                static_cast<unsigned long>(zero.accesses),
                static_cast<double>(zero.accesses) / static_cast<double>(zero.dwords),
                pk.ok && zero.ok && slow.ok ? "" : "  [SOME RUN FAILED]");
    std::printf("  zero-cost model: 1 package %.1f MB/s; 4 packages parallel %.2f ms, sequential "
                "%.2f ms: par/seq wall %.2f (this process had %.2f cores)\n",
                size / 1e6 / pk.one_wall, Ms(pk.par_wall), Ms(pk.seq_wall),
                pk.par_wall / pk.seq_wall, pk.cores);
    std::printf("  4 packages, per-package transfer CPU time: par/seq %.2f; on 2 idle cores "
                "par/seq %.2f; voluntary context switches in a parallel transfer <= %ld\n",
                pk.cpu_ratio, pk.projected_ratio, pk.switches);
    std::printf("  %-14s %12s %12s %12s %12s %12s\n", "per dword", "driver+model", "model alone",
                "driver", "driver share", "floor");
    for (const auto& [label, s] : {std::pair{"0 ns/access", &zero}, {"100 ns/access", &slow}}) {
      std::printf("  %-14s %10.2fns %10.2fns %10.2fns %11.2f%% %10.2fns  (thread CPU)\n", label,
                  Ns(s->total_cpu, s->dwords), Ns(s->model_cpu, s->dwords),
                  Ns(s->driver_cpu, s->dwords), 100 * s->DriverShareCpu(),
                  Ns(s->floor, s->dwords));
      std::printf("  %-14s %10.2fns %10.2fns %10.2fns %11.2f%% %10.2fns  (wall)\n", "",
                  Ns(s->total_wall, s->dwords), Ns(s->model_wall, s->dwords),
                  Ns(s->driver_wall, s->dwords), 100 * s->DriverShareWall(),
                  Ns(s->floor, s->dwords));
    }
    load_rows.push_back(absl::StrFormat(
        "  %-9s %6zu | %9.3fms %9.3fms %6.3f | %9.3fms %9.3fms | %8.2fms | %s",
        name, size / 1024, absl::ToDoubleMilliseconds(unstaged.critical_path),
        absl::ToDoubleMilliseconds(staged.critical_path),
        absl::FDivDuration(staged.critical_path, unstaged.critical_path),
        absl::ToDoubleMilliseconds(unstaged.window), absl::ToDoubleMilliseconds(staged.window),
        absl::ToDoubleMilliseconds(staged.staging), staged.outcome));
    json.push_back(absl::StrFormat(
        "{\"file\":\"%s\",\"bytes\":%d,\"dwords\":%d,\"accesses\":%d,\"mbps_1pkg\":%.1f,"
        "\"ms_4pkg_parallel\":%.3f,\"ms_4pkg_sequential\":%.3f,\"parallel_over_sequential\":%.3f,"
        "\"cpu_parallel_over_sequential\":%.3f,\"projected_2core_parallel_over_sequential\":%.3f,"
        "\"transfer_voluntary_switches\":%ld,"
        "\"ns_per_dword_0ns\":{\"total\":%.3f,\"model\":%.3f,\"driver\":%.3f},"
        "\"ns_per_dword_100ns\":{\"total\":%.3f,\"model\":%.3f,\"driver\":%.3f,\"floor\":%.3f},"
        "\"driver_share_100ns_cpu\":%.4f,\"driver_share_100ns_wall\":%.4f,"
        "\"load_2x8x2\":{\"unstaged_critical_ms\":%.3f,\"staged_critical_ms\":%.3f,"
        "\"unstaged_window_ms\":%.3f,\"staged_window_ms\":%.3f,\"staging_ms\":%.3f}}",
        name, size, zero.dwords, zero.accesses, size / 1e6 / pk.one_wall, Ms(pk.par_wall),
        Ms(pk.seq_wall), pk.par_wall / pk.seq_wall, pk.cpu_ratio, pk.projected_ratio,
        pk.switches,
        Ns(zero.total_cpu, zero.dwords), Ns(zero.model_cpu, zero.dwords),
        Ns(zero.driver_cpu, zero.dwords), Ns(slow.total_cpu, slow.dwords),
        Ns(slow.model_cpu, slow.dwords), Ns(slow.driver_cpu, slow.dwords),
        Ns(slow.floor, slow.dwords), slow.DriverShareCpu(), slow.DriverShareWall(),
        absl::ToDoubleMilliseconds(unstaged.critical_path),
        absl::ToDoubleMilliseconds(staged.critical_path),
        absl::ToDoubleMilliseconds(unstaged.window), absl::ToDoubleMilliseconds(staged.window),
        absl::ToDoubleMilliseconds(staged.staging)));
  }
  std::printf("\nHost load on an emulated 2 x 8 x 2 host (%s)\n", parameters.c_str());
  std::printf("  %-9s %6s | %11s %11s %6s | %11s %11s | %10s | %s\n", "file", "KiB",
              "unstaged", "staged", "ratio", "window uns.", "window st.", "staging", "outcome");
  std::printf("  %-9s %6s | %-31s | %-23s |\n", "", "", "modelled critical path (WRMSR 0x79)",
              "measured rendezvous");
  for (const std::string& row : load_rows) std::printf("%s\n", row.c_str());
  std::printf("{\"bench\":\"staging\",\"runs\":%d,\"load_average\":\"%s\","
              "\"access_cost_ns\":%ld,\"activation_model\":\"%s\",\"results\":[%s]}\n",
              runs, LoadAverage().c_str(), absl::ToInt64Nanoseconds(kSlowAccess),
              parameters.c_str(), absl::StrJoin(json, ",").c_str());
  return 0;
}

}  // namespace
}  // namespace ucode

int main(int argc, char** argv) { return ucode::Main(argc, argv); }
