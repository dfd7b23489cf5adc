#include "host/platform/stop_machine.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "host/base/status_macros.h"
#include "host/microcode/selection.h"
#include "host/platform/emulated_platform.h"
#include "host/platform/futex.h"

namespace ucode::platform {

namespace {

// Kernel setup_cpus(): every present CPU must be online, except an SMT sibling whose
// primary thread is online (it is brought in by NMI). Otherwise reload fails with -EBUSY.
absl::Status CheckCpusLoadable(const Topology& topology) {
  for (const LogicalCpu& c : topology.cpus) {
    if (c.online) continue;
    if (c.thread == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cpu %d (a core's primary thread) is offline: loading aborted (kernel: -EBUSY)", c.id));
    }
    if (c.package >= 0 && topology.PrimaryOf(c.id) < 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "cpu %d is offline and so is its core's primary thread: loading aborted", c.id));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedActivation>> EmulatedStopMachine::Prepare(
    EmulatedPlatform& platform, const Topology& topology, absl::Span<const uint8_t> update,
    uint32_t revision, const ActivationOptions& options) {
  RETURN_IF_ERROR(CheckCpusLoadable(topology));
  return std::unique_ptr<PreparedActivation>(
      new EmulatedStopMachine(platform, topology, update, revision, options));
}

EmulatedStopMachine::EmulatedStopMachine(EmulatedPlatform& platform, const Topology& topology,
                                         absl::Span<const uint8_t> update, uint32_t new_revision,
                                         const ActivationOptions& options)
    : platform_(platform),
      topology_(topology),
      update_(update),
      new_revision_(new_revision),
      options_(options),
      stoppers_(StopperThreads::Acquire(static_cast<int>(topology.cpus.size()))),
      expected_(static_cast<uint32_t>(topology.OnlineCount())),
      siblings_(topology.cpus.size()),
      ctrl_(topology.cpus.size()),
      kicked_(topology.cpus.size()) {
  result_.cpus.assign(topology.cpus.size(), CpuResult{});
  late_cpus_in_.store(expected_, std::memory_order_relaxed);
  bool kicker_found = false;
  for (size_t p = 0; p < topology.cpus.size(); ++p) {
    const LogicalCpu& cpu = topology.cpus[p];
    result_.cpus[p].cpu = cpu.id;
    if (!cpu.online) offline_.push_back(p);
    if (cpu.online && !options.faults.never_arrive.count(cpu.id) &&
        !options.faults.late_arrival.count(cpu.id)) {
      ++punctual_;
    }
    // The kernel's kicker is CPU 0, which cannot go offline; here the first online CPU.
    if (cpu.online && !kicker_found) {
      kicker_ = p;
      kicker_found = true;
    }
    if (!cpu.online || cpu.thread != 0) continue;
    for (size_t i = 0; i < topology.cpus.size(); ++i) {
      const LogicalCpu& s = topology.cpus[i];
      if (s.package != cpu.package || s.core != cpu.core || s.id == cpu.id) continue;
      (s.online ? siblings_[p].online : siblings_[p].offline).push_back(i);
    }
  }
}

Activation EmulatedStopMachine::Activate() {
  stoppers_.threads().RunOnEach([this](int i) { CpuMain(static_cast<size_t>(i)); });
  const int64_t all_arrived = all_arrived_ns_.load(std::memory_order_acquire);
  const int64_t last_done = last_done_ns_.load(std::memory_order_acquire);
  if (all_arrived != 0 && last_done > all_arrived) {
    result_.activation_window = absl::Nanoseconds(last_done - all_arrived);
  }
  for (const CpuResult& c : result_.cpus) {
    result_.modelled_critical_path = std::max(result_.modelled_critical_path, c.modelled);
  }
  return std::move(result_);
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
  const bool kicker = index == kicker_ && !offline_.empty();
  if (kicker && !KickOfflineSiblings()) {
    // Kernel load_primary(): without every offline sibling parked in the NMI handler, CPU 0
    // does not join, so nobody applies; its result keeps the initial value (failed).
    r.outcome = CpuOutcome::kFailed;
    r.detail = absl::StrFormat(
        "skipped the load: %d of %d offline siblings did not answer the NMI kick within %s",
        offline_.size() - offline_in_nmi_.load(std::memory_order_acquire), offline_.size(),
        absl::FormatDuration(options_.offline_kick_timeout));
    ReleaseOfflineSiblings();
    return;
  }
  if (!Arrive(cpu.id)) {
    r.outcome = CpuOutcome::kTimedOut;
    r.detail = absl::StrFormat("rendezvous: not every CPU arrived within %s",
                               absl::FormatDuration(options_.arrival_timeout));
  } else {
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
  if (kicker) ReleaseOfflineSiblings();
}

// Kernel kick_offline_cpus(): NMI every offline CPU, then wait for all of them to report
// from the NMI handler.
bool EmulatedStopMachine::KickOfflineSiblings() {
  for (size_t i : offline_) {
    kicked_[i].store(kKicked, std::memory_order_release);
    FutexWakeAll(&kicked_[i]);
  }
  const uint32_t all = static_cast<uint32_t>(offline_.size());
  return FutexWaitUntil(
      &offline_in_nmi_, [all](uint32_t n) { return n >= all; },
      MonotonicNs() + absl::ToInt64Nanoseconds(options_.offline_kick_timeout));
}

// Kernel release_offline_cpus(), unconditional once CPU 0 is done.
void EmulatedStopMachine::ReleaseOfflineSiblings() {
  for (size_t i : offline_) {
    kicked_[i].store(kReleased, std::memory_order_release);
    FutexWakeAll(&kicked_[i]);
  }
}

bool EmulatedStopMachine::Arrive(int cpu) {
  if (options_.faults.late_arrival.count(cpu)) {
    // Arrive only once every punctual CPU has given up. They all do (this CPU is missing),
    // except a CPU 0 that skipped the load; the bound is for that case.
    const uint32_t punctual = static_cast<uint32_t>(punctual_);
    FutexWaitUntil(
        &gave_up_, [punctual](uint32_t n) { return n >= punctual; },
        MonotonicNs() + absl::ToInt64Nanoseconds(10 * options_.arrival_timeout +
                                                 options_.offline_kick_timeout));
  }
  const int64_t deadline = MonotonicNs() + absl::ToInt64Nanoseconds(options_.arrival_timeout);
  if (late_cpus_in_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    all_arrived_ns_.store(MonotonicNs(), std::memory_order_release);
    FutexWakeAll(&late_cpus_in_);
    return true;
  }
  if (FutexWaitUntil(
          &late_cpus_in_, [](uint32_t n) { return n == 0; }, deadline)) {
    return true;
  }
  // Kernel wait_for_cpus(): "Prevent the late comers from making progress and let them
  // time out".
  late_cpus_in_.fetch_add(1, std::memory_order_acq_rel);
  gave_up_.fetch_add(1, std::memory_order_acq_rel);
  FutexWakeAll(&gave_up_);
  return false;
}

void EmulatedStopMachine::Primary(size_t index, CpuResult& r) {
  const LogicalCpu& cpu = topology_.cpus[index];
  if (options_.faults.primary_hangs.count(cpu.id)) {
    r.outcome = CpuOutcome::kFailed;
    r.detail = "hung in WRMSR 0x79 (injected); siblings never released";
    return;
  }
  // Kernel __apply_microcode(): a core already at the update's revision or newer skips
  // the (expensive) WRMSR and answers UCODE_OK.
  absl::StatusOr<uint32_t> running = ReadRevision(platform_, cpu.id);
  bool ok = false;
  if (running.ok() && !microcode::IsNewerRevision(new_revision_, *running)) {
    r.outcome = CpuOutcome::kAlreadyCurrent;
    r.revision_after = *running;
    r.detail = absl::StrFormat("already at 0x%x; WRMSR 0x79 skipped", *running);
    ok = true;
  } else {
    absl::StatusOr<absl::Duration> applied = platform_.ApplyUpdateOnCpu(cpu.id, update_);
    if (applied.ok()) {
      r.outcome = CpuOutcome::kUpdated;
      r.modelled = *applied;
      r.revision_after = new_revision_;
      ok = true;
    } else {
      r.outcome = CpuOutcome::kFailed;
      r.detail = std::string(applied.status().message());
    }
  }
  for (size_t i : siblings_[index].online) {
    ctrl_[i].store(ok ? kApply : kDone, std::memory_order_release);
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
  absl::StatusOr<uint32_t> rev = ReadRevision(platform_, cpu.id);
  if (rev.ok() && !microcode::IsNewerRevision(new_revision_, *rev)) {
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
  // Sits in play_dead() until kicked; then answers from microcode_offline_nmi_handler()
  // and waits there until CPU 0 releases it. Bounded here so that a run whose CPU 0 never
  // came always ends.
  const int64_t deadline =
      MonotonicNs() + absl::ToInt64Nanoseconds(options_.offline_kick_timeout +
                                                options_.arrival_timeout +
                                                options_.sibling_timeout);
  auto released = [](uint32_t k) { return k == kReleased; };
  if (!FutexWaitUntil(
          &kicked_[index], [](uint32_t k) { return k != kNotKicked; }, deadline)) {
    r.outcome = CpuOutcome::kFailed;
    r.detail = "offline sibling was never kicked (CPU 0 did not come)";
    return;
  }
  if (options_.faults.offline_silent.count(topology_.cpus[index].id)) {
    r.outcome = CpuOutcome::kFailed;
    r.detail = "offline sibling did not answer the NMI kick (injected)";
    FutexWaitUntil(&kicked_[index], released, deadline);
    return;
  }
  r.outcome = CpuOutcome::kOffline;
  offline_in_nmi_.fetch_add(1, std::memory_order_acq_rel);
  FutexWakeAll(&offline_in_nmi_);
  FutexWaitUntil(&kicked_[index], released, deadline);
}

}  // namespace ucode::platform
