#include "host/late_load/stop_machine.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "host/late_load/futex.h"

namespace ucode::late_load {

using platform::LogicalCpu;

EmulatedStopMachine::EmulatedStopMachine(platform::Platform& platform,
                                         const platform::Topology& topology,
                                         absl::Span<const uint8_t> update,
                                         uint32_t new_revision, const LateLoadOptions& options,
                                         LateLoadResult& result)
    : platform_(platform),
      topology_(topology),
      update_(update),
      new_revision_(new_revision),
      options_(options),
      result_(result),
      expected_(static_cast<uint32_t>(topology.OnlineCount())),
      siblings_(topology.cpus.size()),
      ctrl_(topology.cpus.size()),
      kicked_(topology.cpus.size()) {
  result_.cpus.assign(topology.cpus.size(), CpuResult{});
  for (size_t p = 0; p < topology.cpus.size(); ++p) {
    const LogicalCpu& cpu = topology.cpus[p];
    result_.cpus[p].cpu = cpu.id;
    if (!cpu.online || cpu.thread != 0) continue;
    for (size_t i = 0; i < topology.cpus.size(); ++i) {
      const LogicalCpu& s = topology.cpus[i];
      if (s.package != cpu.package || s.core != cpu.core || s.id == cpu.id) continue;
      (s.online ? siblings_[p].online : siblings_[p].offline).push_back(i);
    }
  }
}

void EmulatedStopMachine::Run(StopperThreads& stoppers) {
  stoppers.RunOnEach([this](int i) { CpuMain(static_cast<size_t>(i)); });
  const int64_t all_arrived = all_arrived_ns_.load(std::memory_order_acquire);
  const int64_t last_done = last_done_ns_.load(std::memory_order_acquire);
  if (all_arrived != 0 && last_done > all_arrived) {
    result_.activation_window = absl::Nanoseconds(last_done - all_arrived);
  }
  for (const CpuResult& c : result_.cpus) {
    result_.modelled_critical_path = std::max(result_.modelled_critical_path, c.modelled);
  }
}

void EmulatedStopMachine::CpuMain(size_t index) {
  const LogicalCpu& cpu = topology_.cpus[index];
  CpuResult& r = result_.cpus[index];
  if (!cpu.online) {
    OfflineSibling(index, r);
    return;
  }
  if (options_.faults.never_arrive.count(cpu.id)) {
    // Kernel: the CPU's result keeps its initial value, which the accounting counts failed.
    r.outcome = CpuOutcome::kFailed;
    r.detail = "never arrived at the rendezvous (injected)";
    return;
  }
  if (!Arrive()) {
    r.outcome = CpuOutcome::kTimedOut;
    r.detail = absl::StrFormat("rendezvous: not every CPU arrived within %s",
                               absl::FormatDuration(options_.arrival_timeout));
    return;
  }
  if (cpu.thread == 0) {
    Primary(index, r);
  } else {
    Secondary(index, r);
  }
  const int64_t now = MonotonicNs();
  int64_t last = last_done_ns_.load(std::memory_order_relaxed);
  while (now > last &&
         !last_done_ns_.compare_exchange_weak(last, now, std::memory_order_acq_rel)) {
  }
}

bool EmulatedStopMachine::Arrive() {
  const int64_t deadline = MonotonicNs() + absl::ToInt64Nanoseconds(options_.arrival_timeout);
  if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == expected_) {
    all_arrived_ns_.store(MonotonicNs(), std::memory_order_release);
    FutexWakeAll(&arrived_);
    return true;
  }
  return FutexWaitUntil(
      &arrived_, [this](uint32_t n) { return n >= expected_; }, deadline);
}

void EmulatedStopMachine::Primary(size_t index, CpuResult& r) {
  const LogicalCpu& cpu = topology_.cpus[index];
  // Offline siblings are brought into the NMI handler before the update, so that they
  // cannot run stale code meanwhile (kernel: kick_offline_cpus()).
  for (size_t i : siblings_[index].offline) {
    kicked_[i].store(1, std::memory_order_release);
    FutexWakeAll(&kicked_[i]);
  }
  if (options_.faults.primary_hangs.count(cpu.id)) {
    r.outcome = CpuOutcome::kFailed;
    r.detail = "hung in WRMSR 0x79 (injected); siblings never released";
    return;
  }
  absl::StatusOr<absl::Duration> applied = platform_.ApplyUpdateOnCpu(cpu.id, update_);
  if (applied.ok()) {
    r.outcome = CpuOutcome::kUpdated;
    r.modelled = *applied;
    r.revision_after = new_revision_;
  } else {
    r.outcome = CpuOutcome::kFailed;
    r.detail = std::string(applied.status().message());
  }
  for (size_t i : siblings_[index].online) {
    ctrl_[i].store(applied.ok() ? kApply : kDone, std::memory_order_release);
    FutexWakeAll(&ctrl_[i]);
  }
}

void EmulatedStopMachine::Secondary(size_t index, CpuResult& r) {
  const LogicalCpu& cpu = topology_.cpus[index];
  const int64_t deadline = MonotonicNs() + absl::ToInt64Nanoseconds(options_.sibling_timeout);
  if (!FutexWaitUntil(
          &ctrl_[index], [](uint32_t c) { return c != kWait; }, deadline)) {
    r.outcome = CpuOutcome::kTimedOut;
    r.detail = absl::StrFormat(
        "timed out after %s waiting for primary cpu %d (the kernel panics here)",
        absl::FormatDuration(options_.sibling_timeout), topology_.PrimaryOf(cpu.id));
    return;
  }
  if (ctrl_[index].load(std::memory_order_acquire) == kDone) {
    r.outcome = CpuOutcome::kFailed;
    r.detail = absl::StrFormat("primary cpu %d failed; not applied", topology_.PrimaryOf(cpu.id));
    return;
  }
  // Siblings share the core's microcode: the kernel's apply on a sibling only finds the
  // revision already current.
  absl::StatusOr<uint32_t> rev = platform::ReadRevision(platform_, cpu.id);
  if (rev.ok() && *rev == new_revision_) {
    r.outcome = CpuOutcome::kSibling;
    r.revision_after = *rev;
  } else {
    r.outcome = CpuOutcome::kFailed;
    r.detail = rev.ok() ? absl::StrFormat("revision 0x%x after the primary's update, expected 0x%x",
                                          *rev, new_revision_)
                        : std::string(rev.status().message());
  }
}

void EmulatedStopMachine::OfflineSibling(size_t index, CpuResult& r) {
  // Parked in the NMI handler once kicked (kernel: microcode_offline_nmi_handler()).
  const int64_t deadline =
      MonotonicNs() +
      absl::ToInt64Nanoseconds(options_.arrival_timeout + options_.sibling_timeout);
  if (FutexWaitUntil(
          &kicked_[index], [](uint32_t k) { return k != 0; }, deadline)) {
    r.outcome = CpuOutcome::kOffline;
  } else {
    r.outcome = CpuOutcome::kFailed;
    r.detail = "offline sibling did not respond to the NMI kick";
  }
}

}  // namespace ucode::late_load
