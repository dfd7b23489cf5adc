#include "vmm/ucodectl/host_command_support.h"

#include <unistd.h>

#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "host/base/status_macros.h"
#include "host/platform/platform_choice.h"

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

}  // namespace

staging::StagingProgressFn MakeStagingProgress(bool json) {
  if (json) return nullptr;
  auto printer = std::make_shared<ProgressPrinter>(isatty(STDERR_FILENO) == 1);
  return [printer](const staging::StagingProgress& p) { printer->Update(p); };
}

std::string StagingReportText(const staging::StagingReport& report) {
  std::string out;
  for (const staging::PackageStaging& p : report.packages) {
    if (p.staged()) {
      absl::StrAppendFormat(&out,
                            "package %d (cpu %d, mailbox 0x%x): staged in %s, %d transactions, "
                            "%d retransmits, %zu bytes sent\n",
                            p.package, p.cpu, p.mailbox_addr, absl::FormatDuration(p.elapsed),
                            p.transactions, p.retransmits, p.bytes_sent);
    } else {
      absl::StrAppendFormat(&out, "package %d (cpu %d): NOT staged: %s\n", p.package, p.cpu,
                            p.status.message());
    }
  }
  absl::StrAppend(&out, report.Summary(), "\n");
  return out;
}

}  // namespace ucode::ctl
