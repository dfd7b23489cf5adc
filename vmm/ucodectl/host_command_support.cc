#include "vmm/ucodectl/host_command_support.h"

#include <unistd.h>

#include <cstdio>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "host/platform/platform_choice.h"
#include "proto/json.h"
#include "vmm/orchestrator/report.h"

namespace ucode::ctl {

std::vector<OptionSpec> PlatformOptionSpecs() {
  return {
      {.name = "platform", .takes_value = true, .help = "emulated (default) or linux"},
      {.name = "host-config", .takes_value = true, .help = "emulated host: key = value file"},
      {.name = "host",
       .takes_value = true,
       .repeatable = true,
       .help = "emulated host: one KEY=VALUE override (e.g. platform_id=4)"},
      {.name = "root",
       .takes_value = true,
       .help = "linux: root of sysfs/dev/firmware (default /)"},
      {.name = "json", .takes_value = false, .help = "machine-readable output"},
  };
}

absl::StatusOr<std::unique_ptr<platform::Platform>> PlatformFromArgs(const ParsedArgs& args) {
  platform::PlatformChoice choice;
  choice.backend = args.ValueOr("platform", platform::kEmulatedBackend);
  choice.host_config_path = args.ValueOr("host-config", "");
  choice.host_overrides = args.Values("host");
  choice.root = args.ValueOr("root", "/");
  return platform::MakePlatform(choice);
}

absl::StatusOr<int> IntOption(const ParsedArgs& args, absl::string_view name, int fallback, int lo,
                              int hi, absl::string_view unit) {
  const std::string text = args.ValueOr(name, absl::StrCat(fallback));
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " ", text, ": expected ", lo, "..", hi, unit));
  }
  return v;
}

absl::StatusOr<orchestrator::UpdateMode> UpdateModeFromArgs(const ParsedArgs& args) {
  const std::string mode = args.ValueOr("mode", "strict");
  if (mode == "strict") return v1::UPDATE_MODE_STRICT;
  if (mode == "fast") return v1::UPDATE_MODE_FAST;
  return absl::InvalidArgumentError(absl::StrCat("--mode ", mode, ": expected strict or fast"));
}

namespace {

// Progress state shared by the staging threads.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool tty) : tty_(tty) {}
  void Update(const staging::StagingProgress& p) {
    absl::MutexLock lock(&mu_);
    const int percent = p.image_bytes ? static_cast<int>(100 * p.next_offset / p.image_bytes) : 0;
    int& last = last_percent_[p.package];
    if (tty_) {
      bars_[p.package] = percent;
      std::string line = "\r";
      for (const auto& [pkg, pc] : bars_) {
        const int filled = pc / 5;
        absl::StrAppendFormat(&line, "pkg%d [%s%s] %3d%%  ", pkg, std::string(filled, '#'),
                              std::string(20 - filled, '.'), pc);
      }
      std::fputs(line.c_str(), stderr);
      if (p.done && ++done_ == static_cast<int>(bars_.size())) std::fputs("\n", stderr);
    } else if (p.done || percent / 25 > last / 25) {
      std::fprintf(stderr, "staging package %d: %d%% (%zu bytes sent, %d retransmits)\n", p.package,
                   percent, p.bytes_sent, p.retransmits);
    }
    last = percent;
  }

 private:
  const bool tty_;
  absl::Mutex mu_;
  std::map<int, int> bars_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> last_percent_ ABSL_GUARDED_BY(mu_);
  int done_ ABSL_GUARDED_BY(mu_) = 0;
};

// A progress callback writing to stderr; silent when `json` is set. Thread-safe.
staging::StagingProgressFn MakeStagingProgress(bool json) {
  if (json) return nullptr;
  auto printer = std::make_shared<ProgressPrinter>(isatty(STDERR_FILENO) == 1);
  return [printer](const staging::StagingProgress& p) { printer->Update(p); };
}

}  // namespace

void PrintReport(const orchestrator::UpdateReport& report, bool json) {
  const ucode::v1::UpdateReport typed = orchestrator::ToProto(report);
  if (json) {
    std::printf("%s\n", ProtoJson(typed).c_str());
  } else {
    std::printf("\n%s", orchestrator::ReportText(typed).c_str());
  }
}

ProgressLines::ProgressLines(bool json)
    : json_(json),
      staging_(MakeStagingProgress(json)),
      events_([this](const inventory::HeldEvents::Event& e) {
        absl::FPrintF(stderr, "[%7.3fs] %-16s %s\n", absl::ToDoubleSeconds(e.emitted - start_),
                      orchestrator::StepName(e.step), e.message);
      }) {}

void ProgressLines::Emit(orchestrator::Step step, absl::string_view message,
                         const staging::StagingProgress* staging) {
  if (json_) return;
  if (staging != nullptr) return staging_(*staging);
  events_.Emit(step, message);
}

void ProgressLines::Line(absl::string_view text) {
  if (json_) return;
  events_.Flush();
  std::fprintf(stderr, "[%7.3fs] %s\n", absl::ToDoubleSeconds(absl::Now() - start_),
               std::string(text).c_str());
}

orchestrator::UpdateCallbacks ProgressLines::Callbacks(std::function<bool()> cancelled) {
  orchestrator::UpdateCallbacks callbacks;
  callbacks.emit = [this](orchestrator::Step s, absl::string_view m,
                          const staging::StagingProgress* p) { Emit(s, m, p); };
  callbacks.cancelled = std::move(cancelled);
  return callbacks;
}

}  // namespace ucode::ctl
