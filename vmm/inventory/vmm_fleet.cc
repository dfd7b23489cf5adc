#include "vmm/inventory/vmm_fleet.h"

#include <signal.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "host/base/private_files.h"
#include "host/base/read_file.h"
#include "host/base/unique_fd.h"

namespace ucode::inventory {
namespace {

constexpr absl::Duration kExitPoll = absl::Milliseconds(20);

// What the VMM's own log says about the end of its coordinator (vmm_server.cc wording).
std::string ReleaseAccount(const std::string& log) {
  size_t gone = log.rfind("coordinator gone (control socket closed); ");
  if (gone == std::string::npos) return "no release in its log";
  size_t start = gone + std::string("coordinator gone (control socket closed); ").size();
  std::string parked = log.substr(start, log.find(' ', start) - start);
  std::string out = absl::StrCat("coordinator gone with ", parked, " vCPU(s) parked");
  size_t ran = log.find("dead-man: all vCPUs released; guest ran ", gone);
  if (ran != std::string::npos) {
    size_t n = ran + std::string("dead-man: all vCPUs released; guest ran ").size();
    absl::StrAppend(&out, ", released; guest ran ", log.substr(n, log.find(' ', n) - n),
                    " iterations after");
  }
  return out;
}

}  // namespace

absl::StatusOr<VmmFleetSpec> ParseVmmFleet(absl::string_view text) {
  VmmFleetSpec spec;
  std::vector<std::string> prog = absl::StrSplit(text, absl::MaxSplits(':', 1));
  std::vector<std::string> dims = absl::StrSplit(prog[0], 'x');
  if (dims.size() != 2 || !absl::SimpleAtoi(dims[0], &spec.vms) ||
      !absl::SimpleAtoi(dims[1], &spec.vcpus) || spec.vms < 1 || spec.vcpus < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--vmm_fleet: '", text, "' is not VMSxVCPUS[:program] (e.g. 4x2)"));
  }
  if (prog.size() == 2) spec.program = prog[1];
  return spec;
}

absl::Status WriteFleetRecord(const std::string& path, const std::vector<FleetRecordEntry>& vms) {
  std::string text;
  for (const FleetRecordEntry& vm : vms)
    absl::StrAppend(&text, vm.name, " ", vm.pid, " ", vm.log_path, "\n");
  return WritePrivateFile(path, text);
}

absl::StatusOr<std::vector<FleetRecordEntry>> ReadFleetRecord(const std::string& path) {
  std::vector<FleetRecordEntry> out;
  std::ifstream in(path);
  if (!in) return out;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    FleetRecordEntry e;
    if (f.size() != 3 || !absl::SimpleAtoi(f[1], &e.pid) || e.pid <= 0) {
      return absl::DataLossError(absl::StrCat(path, ": bad line '", line.substr(0, 80), "'"));
    }
    e.name = f[0];
    e.log_path = f[2];
    out.push_back(std::move(e));
  }
  return out;
}

std::string VmmState(pid_t pid, absl::string_view name) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return "exited";
  // /proc/PID/stat field 3 (after the parenthesised comm): Z zombie, T stopped, t tracing
  // stop.
  const std::string stat = ReadTextFile(absl::StrCat("/proc/", pid, "/stat")).value_or("");
  const size_t rp = stat.rfind(')');
  const char state = rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : '?';
  if (rp == std::string::npos || state == 'Z') return "exited";
  const std::string cmdline = ReadTextFile(absl::StrCat("/proc/", pid, "/cmdline")).value_or("");
  if (!absl::StrContains(cmdline, "ucode-vmm") ||
      !absl::StrContains(cmdline, absl::StrCat("--name=", name, std::string(1, '\0')))) {
    return "exited";  // the pid was recycled
  }
  return state == 'T' || state == 't' ? "stopped" : "running";
}

absl::StatusOr<std::string> ConfirmFleetReleased(const std::vector<FleetRecordEntry>& fleet,
                                                 absl::Duration wait) {
  if (fleet.empty()) return std::string("the previous instance managed no VMs");
  const absl::Time end = absl::Now() + wait;
  for (const FleetRecordEntry& vm : fleet) {
    while (VmmState(vm.pid, vm.name) != "exited" && absl::Now() < end) absl::SleepFor(kExitPoll);
  }
  std::vector<std::string> lines;
  std::vector<std::string> unconfirmed;
  for (const FleetRecordEntry& vm : fleet) {
    const std::string log = ReadTextFile(vm.log_path).value_or("");
    const std::string account = ReleaseAccount(log);
    const bool released = absl::StrContains(log, "dead-man: all vCPUs released");
    if (VmmState(vm.pid, vm.name) != "exited") {
      // Still there: fine if it released itself (it is running its guest), else it may
      // still be held and is reported rather than assumed.
      lines.push_back(absl::StrCat(vm.name, " (pid ", vm.pid, ") still running: ", account));
      if (!released) unconfirmed.push_back(vm.name);
    } else {
      lines.push_back(absl::StrCat(vm.name, " (pid ", vm.pid, ") exited: ", account));
    }
  }
  std::string text = absl::StrCat("previous fleet of ", fleet.size(),
                                  " ucode-vmm VMs: ", absl::StrJoin(lines, "; "));
  if (!unconfirmed.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(text, "; not confirmed released: ", absl::StrJoin(unconfirmed, ", ")));
  }
  return text;
}

}  // namespace ucode::inventory
