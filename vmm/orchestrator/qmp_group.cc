#include "vmm/orchestrator/qmp_group.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "host/base/status_macros.h"

namespace ucode::orchestrator {
namespace {

constexpr char kStaleDetail[] =
    "QEMU keeps the revision it was started with; guest view stale until restart";

absl::Duration Left(absl::Time deadline) {
  return std::max(absl::ZeroDuration(), deadline - absl::Now());
}

}  // namespace

// `stop`, acknowledged by STOP (QEMU's vm_stop pauses every vCPU, emits STOP, then
// replies). A VM that is not running is not ours to stop.
void QmpGuestGroup::StopOne(Vm& vm, absl::Time deadline) {
  vm.park_start = absl::Now();
  absl::StatusOr<std::string> state = vm.client->QueryStatus(Left(deadline));
  if (!state.ok()) {
    vm.last = state.status();
    return;
  }
  if (*state != "running") {
    vm.paused_by_other = *state == "paused";
    vm.last = vm.paused_by_other ? absl::OkStatus()
                                 : absl::FailedPreconditionError(
                                       absl::StrCat("run state is '", *state, "'"));
    return;
  }
  vm.parked_by_us = true;  // from here on, a failure may still have stopped it
  vm.last = vm.client->Stop(Left(deadline));
  if (!vm.last.ok()) return;
  absl::StatusOr<qmp::QmpEvent> ack = vm.client->WaitForEvent("STOP", Left(deadline));
  vm.last = ack.status();
  vm.parked_at = ack.ok() ? ack->received : absl::Now();
}

void QmpGuestGroup::ContOne(Vm& vm, absl::Time deadline) {
  vm.last = vm.client->Cont(Left(deadline));
  if (!vm.last.ok()) return;
  absl::StatusOr<qmp::QmpEvent> ack = vm.client->WaitForEvent("RESUME", Left(deadline));
  vm.last = ack.status();
  vm.released_at = ack.ok() ? ack->received : absl::Now();
  vm.parked_by_us = false;
}

absl::StatusOr<std::unique_ptr<QmpGuestGroup>> QmpGuestGroup::Create(
    std::vector<QmpVmSpec> specs, absl::Duration timeout) {
  std::unique_ptr<QmpGuestGroup> g(new QmpGuestGroup());
  for (QmpVmSpec& s : specs) {
    Vm vm;
    absl::StatusOr<std::unique_ptr<qmp::QmpClient>> client =
        qmp::QmpClient::Connect(s.socket_path, timeout);
    if (!client.ok()) {
      return absl::Status(client.status().code(),
                          absl::StrCat("QMP ", s.name, ": ", client.status().message()));
    }
    vm.client = *std::move(client);
    ASSIGN_OR_RETURN(nlohmann::json cpus, vm.client->Execute("query-cpus-fast", {}, timeout));
    vm.vcpus = cpus.is_array() ? static_cast<int>(cpus.size()) : 0;
    vm.view.name = s.name;
    vm.spec = std::move(s);
    g->vms_.push_back(std::move(vm));
  }
  return g;
}

std::vector<std::string> QmpGuestGroup::names() const {
  std::vector<std::string> out;
  for (const Vm& vm : vms_) out.push_back(vm.spec.name);
  return out;
}

int QmpGuestGroup::total_vcpus() const {
  int n = 0;
  for (const Vm& vm : vms_) n += vm.vcpus;
  return n;
}

std::vector<std::string> QmpGuestGroup::ForEach(bool (*pick)(const Vm&),
                                                void (*fn)(Vm&, absl::Time),
                                                absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  std::vector<std::thread> threads;
  std::vector<Vm*> picked;
  for (Vm& vm : vms_) {
    if (!pick(vm)) continue;
    picked.push_back(&vm);
    threads.emplace_back(fn, std::ref(vm), end);
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::string> failed;
  for (Vm* vm : picked) {
    if (!vm->last.ok()) failed.push_back(absl::StrCat(vm->spec.name, ": ", vm->last.message()));
  }
  return failed;
}

absl::Status QmpGuestGroup::Park(absl::Duration deadline) {
  for (Vm& vm : vms_) {
    vm.parked_by_us = vm.paused_by_other = false;
    vm.parked_at = vm.released_at = absl::InfinitePast();
  }
  std::vector<std::string> failed =
      ForEach([](const Vm&) { return true; }, &StopOne, deadline);
  if (failed.empty()) return absl::OkStatus();
  std::vector<std::string> not_resumed =
      ForEach([](const Vm& vm) { return vm.parked_by_us; }, &ContOne, deadline);
  std::string msg = absl::StrCat("qmp: ", failed.size(), " of ", vms_.size(),
                                 " VMs did not stop (", absl::StrJoin(failed, "; "),
                                 "); continued the ones this operation stopped");
  if (!not_resumed.empty()) absl::StrAppend(&msg, "; CONT FAILED for ", absl::StrJoin(not_resumed, "; "));
  return absl::AbortedError(msg);
}

absl::Status QmpGuestGroup::Release(absl::Duration deadline) {
  std::vector<std::string> failed =
      ForEach([](const Vm& vm) { return vm.parked_by_us; }, &ContOne, deadline);
  if (failed.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("qmp: cont failed for ", absl::StrJoin(failed, "; ")));
}

GuestViewResult QmpGuestGroup::SetRevision(uint32_t /*revision*/, absl::Duration /*deadline*/) {
  GuestViewResult r;
  for (Vm& vm : vms_) {
    vm.view.status = ViewStatus::kStaleUntilRestart;
    vm.view.detail = kStaleDetail;
    if (vm.paused_by_other) absl::StrAppend(&vm.view.detail, "; was paused by someone else, left paused");
    r.vms.push_back(vm.view);
  }
  return r;
}

GuestViewResult QmpGuestGroup::VerifyGuestViews(uint32_t /*revision*/, absl::Duration /*timeout*/) {
  GuestViewResult r;
  for (const Vm& vm : vms_) r.vms.push_back(vm.view);
  return r;
}

std::vector<VmReport> QmpGuestGroup::Report() {
  std::vector<VmReport> out;
  for (const Vm& vm : vms_) {
    VmReport r;
    r.kind = kind();
    r.name = vm.spec.name;
    r.vcpus = vm.vcpus;
    if (vm.parked_at != absl::InfinitePast()) {
      r.park_latency = vm.parked_at - vm.park_start;
      if (vm.released_at != absl::InfinitePast()) r.time_parked = vm.released_at - vm.parked_at;
    }
    r.view = vm.view.status;
    r.view_detail = vm.view.detail;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ucode::orchestrator
