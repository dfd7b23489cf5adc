#include "host/late_load/stop_machine.h"

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace ucode::late_load {
namespace {

using platform::LogicalCpu;

// The per-CPU control word of the kernel's struct ucode_ctrl.
enum class Ctrl { kWait, kApply, kDone };

class Rendezvous {
 public:
  Rendezvous(platform::Platform& platform, const platform::Topology& topology,
             absl::Span<const uint8_t> update, uint32_t new_revision,
             const LateLoadOptions& options, LateLoadResult& result)
      : platform_(platform),
        topology_(topology),
        update_(update),
        new_revision_(new_revision),
        options_(options),
        result_(result),
        expected_(topology.OnlineCount()),
        ctrl_(topology.cpus.size(), Ctrl::kWait),
        kicked_(topology.cpus.size(), false) {}

  void Run() {
    {
      std::vector<std::jthread> threads;
      threads.reserve(topology_.cpus.size());
      for (size_t i = 0; i < topology_.cpus.size(); ++i) {
        threads.emplace_back([this, i] { CpuThread(i); });
      }
    }
    absl::MutexLock lock(&mu_);
    if (all_arrived_at_ != absl::InfinitePast() && last_done_at_ > all_arrived_at_) {
      result_.activation_window = last_done_at_ - all_arrived_at_;
    }
  }

 private:
  void CpuThread(size_t index) {
    const LogicalCpu& cpu = topology_.cpus[index];
    CpuResult& r = result_.cpus[index];  // each thread writes only its own slot
    r.cpu = cpu.id;
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
      Primary(cpu, r);
    } else {
      Secondary(cpu, r);
    }
    MarkDone();
  }

  bool Arrive() {
    absl::MutexLock lock(&mu_);
    if (++arrived_ == expected_) {
      all_arrived_at_ = absl::Now();
      cv_.SignalAll();
    }
    return WaitUntil([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return arrived_ >= expected_; },
                     options_.arrival_timeout);
  }

  void Primary(const LogicalCpu& cpu, CpuResult& r) {
    std::vector<size_t> online_siblings, offline_siblings;
    for (size_t i = 0; i < topology_.cpus.size(); ++i) {
      const LogicalCpu& s = topology_.cpus[i];
      if (s.package != cpu.package || s.core != cpu.core || s.id == cpu.id) continue;
      (s.online ? online_siblings : offline_siblings).push_back(i);
    }
    {
      // Offline siblings are brought into the NMI handler before the update, so that they
      // cannot run stale code meanwhile (kernel: kick_offline_cpus()).
      absl::MutexLock lock(&mu_);
      for (size_t i : offline_siblings) kicked_[i] = true;
      cv_.SignalAll();
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
    absl::MutexLock lock(&mu_);
    for (size_t i : online_siblings) ctrl_[i] = applied.ok() ? Ctrl::kApply : Ctrl::kDone;
    cv_.SignalAll();
  }

  void Secondary(const LogicalCpu& cpu, CpuResult& r) {
    const size_t index = &cpu - topology_.cpus.data();
    Ctrl ctrl;
    {
      absl::MutexLock lock(&mu_);
      auto told = [this, index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return ctrl_[index] != Ctrl::kWait;
      };
      if (!WaitUntil(told, options_.sibling_timeout)) {
        r.outcome = CpuOutcome::kTimedOut;
        r.detail = absl::StrFormat(
            "timed out after %s waiting for primary cpu %d (the kernel panics here)",
            absl::FormatDuration(options_.sibling_timeout), topology_.PrimaryOf(cpu.id));
        return;
      }
      ctrl = ctrl_[index];
    }
    if (ctrl == Ctrl::kDone) {
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

  void OfflineSibling(size_t index, CpuResult& r) {
    // Parked in the NMI handler once kicked (kernel: microcode_offline_nmi_handler()).
    absl::MutexLock lock(&mu_);
    auto kicked = [this, index]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return kicked_[index]; };
    if (WaitUntil(kicked, options_.arrival_timeout + options_.sibling_timeout)) {
      r.outcome = CpuOutcome::kOffline;
    } else {
      r.outcome = CpuOutcome::kFailed;
      r.detail = "offline sibling did not respond to the NMI kick";
    }
  }

  // Waits with mu_ held until `ready()` or `timeout` has passed; returns ready().
  template <typename Pred>
  bool WaitUntil(Pred ready, absl::Duration timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time deadline = absl::Now() + timeout;
    while (!ready()) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return ready();
    }
    return true;
  }

  void MarkDone() {
    absl::MutexLock lock(&mu_);
    last_done_at_ = std::max(last_done_at_, absl::Now());
  }

  platform::Platform& platform_;
  const platform::Topology& topology_;
  const absl::Span<const uint8_t> update_;
  const uint32_t new_revision_;
  const LateLoadOptions& options_;
  LateLoadResult& result_;
  const int expected_;

  absl::Mutex mu_;
  absl::CondVar cv_;  // signalled on every arrival, control word and kick
  int arrived_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time all_arrived_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_done_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<Ctrl> ctrl_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> kicked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

void RunEmulatedStopMachine(platform::Platform& platform, const platform::Topology& topology,
                            absl::Span<const uint8_t> update, uint32_t new_revision,
                            const LateLoadOptions& options, LateLoadResult& result) {
  result.cpus.assign(topology.cpus.size(), CpuResult{});
  Rendezvous(platform, topology, update, new_revision, options, result).Run();
  for (const CpuResult& c : result.cpus) {
    result.modelled_critical_path = std::max(result.modelled_critical_path, c.modelled);
  }
}

}  // namespace ucode::late_load
