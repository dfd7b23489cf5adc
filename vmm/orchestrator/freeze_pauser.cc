#include "vmm/orchestrator/freeze_pauser.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/base/read_file.h"
#include "vmm/freeze/cgroup_plan.h"
#include "vmm/freeze/leftovers.h"
#include "vmm/freeze/vcpu_threads.h"

namespace ucode::orchestrator {

absl::Status KernelFreezerAvailable(const std::string& mountinfo_path) {
  absl::StatusOr<std::string> text = ReadTextFile(mountinfo_path);
  if (!text.ok()) return text.status();
  const freeze::CgroupMounts m = freeze::ParseMountinfo(*text);
  if (!m.v2.empty() || !m.v1_freezer.empty()) return absl::OkStatus();
  return absl::UnimplementedError(
      "no kernel freezer on this host (neither cgroup2 nor the cgroup-v1 freezer is mounted)");
}

FreezePauser::~FreezePauser() {
  if (freezer_ != nullptr) freezer_->Restore().IgnoreError();
  freezer_.reset();
  // The guard's last act is one more thaw of every unit ('T'): harmless after Restore,
  // and the safety net if Restore's own thaw failed.
  guard_.reset();
}

absl::Status FreezePauser::Prepare(absl::Span<const libvirt::Domain> domains,
                                   absl::Span<const int> vcpus) {
  absl::StatusOr<std::string> mountinfo = ReadTextFile(options_.mountinfo_path);
  if (!mountinfo.ok()) return mountinfo.status();
  std::vector<freeze::FreezeTarget> targets;
  std::vector<std::string> bad;
  absl::StatusCode code = absl::StatusCode::kFailedPrecondition;
  target_of_.assign(domains.size(), std::nullopt);
  for (size_t i = 0; i < domains.size(); ++i) {
    const libvirt::Domain& d = domains[i];
    absl::StatusOr<int> state = d.State();
    if (state.ok() && *state == libvirt::kDomainPaused) continue;  // someone else's pause
    absl::StatusOr<pid_t> pid = freeze::FindQemuByUuid(options_.proc_root, d.uuid());
    if (!pid.ok()) {
      // Not on this host (a remote URI, another driver): freezing cannot reach it.
      if (absl::IsNotFound(pid.status())) code = absl::StatusCode::kNotFound;
      bad.push_back(absl::StrCat(d.name(), ": ", pid.status().message()));
      continue;
    }
    absl::StatusOr<std::vector<freeze::ThreadInput>> threads =
        freeze::ReadVcpuThreads(options_.proc_root, *pid, vcpus[i]);
    if (!threads.ok()) {
      bad.push_back(absl::StrCat(d.name(), " (QEMU pid ", *pid, "): ", threads.status().message()));
      continue;
    }
    // Our cgroups are named after this process and the VM's: two coordinators, or two VMs
    // in one parent cgroup, never share one.
    const std::string own_name = absl::StrCat(freeze::kOwnCgroupPrefix, getpid(), "-", *pid);
    absl::StatusOr<freeze::FreezePlan> plan = freeze::PlanFreeze(*mountinfo, *threads, own_name);
    if (!plan.ok()) {
      if (absl::IsUnimplemented(plan.status())) code = absl::StatusCode::kUnimplemented;
      bad.push_back(absl::StrCat(d.name(), ": ", plan.status().message()));
      continue;
    }
    target_of_[i] = targets.size();
    targets.push_back({.name = d.name(), .plan = *std::move(plan)});
  }
  if (!bad.empty()) {
    return absl::Status(code, absl::StrCat("freeze: ", absl::StrJoin(bad, "; "),
                                           "; nothing was frozen"));
  }
  absl::StatusOr<std::unique_ptr<freeze::Freezer>> f = freeze::Freezer::Prepare(std::move(targets));
  if (!f.ok()) return f.status();
  absl::StatusOr<freeze::FreezeGuard> guard =
      freeze::FreezeGuard::Start((*f)->ThawWrites(), options_.hold_limit);
  if (!guard.ok()) return guard.status();  // ~Freezer puts the threads back
  freezer_ = *std::move(f);
  guard_.emplace(*std::move(guard));
  return absl::OkStatus();
}

std::vector<PauseOutcome> FreezePauser::Pause(absl::Span<const libvirt::Domain> domains,
                                              absl::Duration deadline) {
  std::vector<PauseOutcome> out(domains.size());
  if (freezer_ == nullptr || target_of_.size() != domains.size()) {
    for (PauseOutcome& o : out) o.status = absl::FailedPreconditionError("freeze: Pause before Prepare");
    return out;
  }
  absl::Status s = guard_->Arm();
  if (s.ok()) s = freezer_->Freeze(deadline);
  for (size_t i = 0; i < domains.size(); ++i) {
    if (!target_of_[i]) {
      out[i].paused_by_other = true;
      continue;
    }
    if (!s.ok()) {
      out[i].status = s;
      continue;
    }
    const freeze::TargetTiming& t = freezer_->timings()[*target_of_[i]];
    out[i].paused_by_other = t.frozen_by_other;
    out[i].latency = t.freeze_latency;
  }
  if (!s.ok() && guard_) guard_->Disarm();  // Freeze thawed everything already
  return out;
}

std::vector<PauseOutcome> FreezePauser::Resume(absl::Span<const libvirt::Domain> domains,
                                               const std::vector<bool>& which,
                                               absl::Duration /*deadline*/) {
  std::vector<PauseOutcome> out(domains.size());
  if (freezer_ == nullptr || which.size() != domains.size()) return out;
  const absl::Time start = absl::Now();
  // The freezer thaws every unit it froze: there is no partial thaw to ask for.
  absl::Status s = freezer_->Thaw();
  const absl::Duration latency = absl::Now() - start;
  guard_->Disarm();
  for (size_t i = 0; i < domains.size(); ++i) {
    if (!which[i]) continue;
    out[i].status = s;
    out[i].latency = latency;
  }
  return out;
}

int FreezePauser::TakeDeadmanReleases() { return guard_ ? guard_->TakeFired() : 0; }

std::string FreezePauser::Describe() const {
  if (freezer_ == nullptr) return "freeze";
  std::vector<std::string> parts;
  for (const freeze::FreezeTarget& t : freezer_->targets()) {
    parts.push_back(absl::StrCat(t.name, ": ", t.plan.Describe()));
  }
  return absl::StrCat("freeze (", absl::StrJoin(parts, "; "), ")");
}

}  // namespace ucode::orchestrator
