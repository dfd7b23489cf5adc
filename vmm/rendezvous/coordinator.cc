// Coordinator lifecycle: spawning and attaching the VMMs, guest-record snapshots,
// shutdown. The rendezvous protocol itself is in rendezvous.cc.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <set>

#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::rendezvous {

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(std::vector<VmSpec> vms,
                                                                 CoordinatorOptions options) {
  if (vms.empty() || vms.size() > kMaxVms) {
    return absl::InvalidArgumentError(
        absl::StrCat("need 1..", kMaxVms, " VMs, got ", vms.size()));
  }
  std::set<std::string> names;
  for (const VmSpec& s : vms) {
    if (!names.insert(s.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("duplicate VM name '", s.name, "'"));
    }
  }
  std::string path = options.vmm_path;
  if (path.empty()) {
    ASSIGN_OR_RETURN(path, FindVmmBinary());
  }
  std::unique_ptr<Coordinator> c(new Coordinator());
  c->vmm_path_ = path;
  c->log_dir_ = options.log_dir;
  c->area_fd_ = UniqueFd(memfd_create("ucode-rendezvous", MFD_CLOEXEC));
  if (!c->area_fd_) return ErrnoStatus(errno, "memfd_create rendezvous area");
  if (ftruncate(c->area_fd_.get(), kAreaSize) < 0) return ErrnoStatus(errno, "ftruncate");
  void* p = mmap(nullptr, kAreaSize, PROT_READ | PROT_WRITE, MAP_SHARED, c->area_fd_.get(), 0);
  if (p == MAP_FAILED) return ErrnoStatus(errno, "mmap rendezvous area");
  c->area_ = static_cast<Area*>(p);

  // Spawn all first so that the VMs are created in parallel, then attach each.
  for (const VmSpec& s : vms) {
    std::string log = options.log_dir.empty() ? "" : absl::StrCat(options.log_dir, "/", s.name, ".log");
    ASSIGN_OR_RETURN(auto vmm, VmmProcess::Spawn(path, s, log));
    c->vmms_.push_back(std::move(vmm));
    c->total_vcpus_ += s.vcpus;
  }
  c->deadman_ = options.deadman;
  int64_t deadman_ms = absl::ToInt64Milliseconds(options.deadman);
  for (size_t i = 0; i < c->vmms_.size(); ++i) {
    RETURN_IF_ERROR(c->vmms_[i]
                        ->Call(absl::StrCat("ATTACH ", i, " ", deadman_ms), c->area_fd_.get(),
                               absl::Seconds(30))
                        .status());
    if (c->area_->vm[i].pid.load(std::memory_order_acquire) != c->vmms_[i]->pid()) {
      return absl::InternalError(absl::StrCat(vms[i].name, ": slot ", i, " not published"));
    }
  }
  return c;
}

Coordinator::~Coordinator() {
  Shutdown().IgnoreError();
  if (area_ != nullptr) munmap(area_, kAreaSize);
}

absl::Status Coordinator::Shutdown() {
  DropRealtime();  // a Park() without its Release()
  absl::Status first;
  for (auto& vmm : vmms_) {
    absl::Status s = vmm->Stop();
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

std::vector<pid_t> Coordinator::pids() const {
  std::vector<pid_t> out;
  for (const auto& vmm : vmms_) out.push_back(vmm->pid());
  return out;
}

absl::Status Coordinator::OpenGapWindows() {
  for (auto& vmm : vmms_) RETURN_IF_ERROR(vmm->Call("GAP_WINDOW").status());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<VmResult>> Coordinator::ReadGuestViews() {
  for (auto& vmm : vmms_) RETURN_IF_ERROR(vmm->Call("STATS").status());
  std::vector<VmResult> out;
  for (size_t i = 0; i < vmms_.size(); ++i) {
    const VmSlot& vm = area_->vm[i];
    VmResult r;
    r.name = vmms_[i]->spec().name;
    r.pid = vmms_[i]->pid();
    double ns_per_tick = vm.tsc_khz > 0 ? 1e6 / vm.tsc_khz : 0;
    int64_t first_out = INT64_MAX, last_parked = 0, last_back = 0;
    for (uint32_t j = 0; j < vm.vcpus; ++j) {
      const VcpuSlot& s = vm.vcpu[j];
      VcpuView v;
      v.index = j;
      v.iterations = s.guest.iterations;
      v.park_gap = absl::Nanoseconds(static_cast<int64_t>(s.guest.park_gap * ns_per_tick));
      v.baseline_gap =
          absl::Nanoseconds(static_cast<int64_t>(s.guest.window_gap_at_park * ns_per_tick));
      v.first_rev_msr = s.guest.first_rev;
      v.rev_msr = s.guest.cur_rev;
      v.backwards = s.guest.backwards;
      v.parked_ns = s.parked_ns;
      v.resumed_ns = s.resumed_ns;
      v.deadman_releases = s.deadman_releases.load();
      for (uint64_t k = 0; k < s.guest.nchanges && k < 6; ++k) {
        v.changes.push_back(
            {s.guest.changes[k].rev, s.guest.changes[k].tsc, s.guest.changes[k].iteration});
      }
      v.parked_iteration = s.parked_iteration;
      first_out = std::min(first_out, s.kicked_out_ns);
      last_parked = std::max(last_parked, s.parked_ns);
      last_back = std::max(last_back, s.resumed_ns);
      r.guest_blackout = std::max(r.guest_blackout, v.park_gap);
      r.baseline_max_gap = std::max(r.baseline_max_gap, v.baseline_gap);
      uint32_t before = static_cast<uint32_t>(v.first_rev_msr >> 32);
      uint32_t after = static_cast<uint32_t>(v.rev_msr >> 32);
      r.revision_before = j == 0 ? before : std::min(r.revision_before, before);
      r.revision_after = j == 0 ? after : std::min(r.revision_after, after);
      r.vcpus.push_back(std::move(v));
    }
    if (park_ns_ > 0) r.park_latency = absl::Nanoseconds(last_parked - park_ns_);
    if (first_out != INT64_MAX && last_back > first_out) {
      r.time_parked = absl::Nanoseconds(last_back - first_out);
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace ucode::rendezvous
