#include "vmm/inventory/libvirt_guests.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "host/base/read_file.h"
#include "host/base/status_macros.h"
#include "vmm/freeze/leftovers.h"
#include "vmm/freeze/vcpu_threads.h"
#include "vmm/libvirt/park_marker.h"

namespace ucode::inventory {
namespace {

// A frozen domain's guard thaws it when the daemon dies; if the guard died too, the
// cgroups are still frozen: thaw them and put threads back (vmm/freeze/leftovers.h). A
// domain whose QEMU is not on this host (or was suspended, not frozen) has nothing to do.
absl::StatusOr<int> ThawFrozen(const libvirt::Domain& d) {
  absl::StatusOr<pid_t> pid = freeze::FindQemuByUuid("/proc", d.uuid());
  if (!pid.ok()) return 0;
  return freeze::ThawLeftovers("/proc", ReadTextFile("/proc/self/mountinfo").value_or(""), *pid);
}

}  // namespace

absl::StatusOr<libvirt::DomainSelector> ParseLibvirtDomains(absl::string_view flag) {
  libvirt::DomainSelector s;
  if (flag == "all") {
    s.all_running = true;
    return s;
  }
  for (absl::string_view name : absl::StrSplit(flag, ',', absl::SkipWhitespace())) {
    s.names_or_uuids.emplace_back(name);
  }
  if (s.names_or_uuids.empty()) {
    return absl::InvalidArgumentError("--libvirt_domains: want NAME,... or 'all'");
  }
  return s;
}

absl::StatusOr<std::unique_ptr<LibvirtGuests>> LibvirtGuests::Open(absl::string_view uri,
                                                                   libvirt::DomainSelector selector,
                                                                   LibvirtHold hold) {
  ASSIGN_OR_RETURN(std::unique_ptr<libvirt::Connection> conn, libvirt::Connection::Open(uri));
  std::unique_ptr<LibvirtGuests> g(new LibvirtGuests(std::move(conn), std::move(selector), hold));
  RETURN_IF_ERROR(g->Names().status());
  return g;
}

absl::StatusOr<std::vector<std::string>> LibvirtGuests::Names() const {
  ASSIGN_OR_RETURN(std::vector<libvirt::Domain> doms, conn_->ListDomains(selector_));
  std::vector<std::string> out;
  for (const libvirt::Domain& d : doms) out.push_back(d.name());
  return out;
}

absl::StatusOr<std::vector<ucode::v1::Guest>> LibvirtGuests::Describe() const {
  ASSIGN_OR_RETURN(std::vector<libvirt::Domain> doms, conn_->ListDomains(selector_));
  std::vector<ucode::v1::Guest> out;
  for (const libvirt::Domain& d : doms) {
    ucode::v1::Guest& g = out.emplace_back();
    g.set_name(d.name());
    g.set_kind("libvirt");
    absl::StatusOr<int> vcpus = d.VcpuCount();
    g.set_vcpus(vcpus.ok() ? static_cast<uint32_t>(*vcpus) : 0);
    absl::StatusOr<int> state = d.State();
    g.set_state(state.ok() ? libvirt::DomainStateName(*state) : "unknown");
    g.set_guest_view_updatable(false);
  }
  return out;
}

absl::StatusOr<LibvirtApplyGroup> LibvirtGuests::Group(const std::vector<std::string>& only,
                                                       const std::string& mode,
                                                       const std::string& operation) const {
  ASSIGN_OR_RETURN(std::vector<libvirt::Domain> doms, conn_->ListDomains(selector_));
  if (!only.empty()) {
    std::erase_if(doms, [&](const libvirt::Domain& d) {
      return std::find(only.begin(), only.end(), d.name()) == only.end();
    });
  }
  LibvirtApplyGroup out;
  if (doms.empty()) return out;
  for (const libvirt::Domain& d : doms) {
    absl::StatusOr<int> state = d.State();
    // A domain whose state cannot be read is counted: Park will try to suspend it.
    if (!state.ok() || *state != libvirt::kDomainPaused) out.to_suspend.push_back(d.name());
  }
  orchestrator::LibvirtGroupOptions options{
      .mode = mode, .pause = hold_.pause, .operation = operation};
  options.freeze.hold_limit = hold_.deadman;
  ASSIGN_OR_RETURN(out.group,
                   orchestrator::LibvirtGuestGroup::Create(*conn_, std::move(doms), options));
  return out;
}

absl::StatusOr<std::string> LibvirtGuests::ResumePaused(const std::vector<std::string>& names,
                                                        const std::string& operation,
                                                        absl::Duration deadline) const {
  std::vector<libvirt::Domain> to_resume;
  std::vector<std::string> left;     // not ours to resume, or already running
  std::vector<std::string> trouble;  // could not be checked or resumed
  for (const std::string& name : names) {
    absl::StatusOr<libvirt::Domain> d = conn_->LookupDomain(name);
    if (!d.ok()) {
      left.push_back(absl::StrCat(name, " is gone"));
      continue;
    }
    absl::StatusOr<int> thawed = ThawFrozen(*d);
    if (!thawed.ok()) {
      trouble.push_back(absl::StrCat(name, ": ", thawed.status().message()));
    } else if (*thawed > 0) {
      left.push_back(
          absl::StrCat(name, " thawed (", *thawed, " frozen cgroup(s) left by the operation)"));
    }
    int reason = 0;
    absl::StatusOr<int> got = d->State(&reason);
    if (!got.ok()) {
      trouble.push_back(std::string(got.status().message()));
      continue;
    }
    const int state = *got;
    if (state == libvirt::kDomainPaused && reason == libvirt::kPausedByUser) {
      absl::StatusOr<std::optional<std::string>> marker = libvirt::ReadParkMarker(*d);
      if (!marker.ok()) {
        trouble.push_back(std::string(marker.status().message()));
      } else if (*marker == operation) {
        to_resume.push_back(*std::move(d));
      } else if (!marker->has_value()) {
        // The journal may be stale (a lost release row); libvirt's metadata is not.
        left.push_back(absl::StrCat(name,
                                    " left paused (no ucode park marker: the operation "
                                    "had released it, the pause is someone else's)"));
      } else {
        left.push_back(absl::StrCat(name, " left paused (its park marker names ", **marker,
                                    ", not ", operation, ")"));
      }
    } else if (state == libvirt::kDomainPaused) {
      left.push_back(absl::StrCat(name, " left paused (pause reason ", reason, ", not ours)"));
    } else {
      left.push_back(absl::StrCat(name, " already ", libvirt::DomainStateName(state)));
    }
  }
  std::vector<std::string> resumed;
  const std::vector<libvirt::DomainOpResult> results = conn_->ResumeAll(to_resume, deadline);
  for (size_t i = 0; i < results.size(); ++i) {
    const libvirt::DomainOpResult& r = results[i];
    if (!r.status.ok()) {
      trouble.push_back(absl::StrCat(r.name, ": ", r.status.message()));
      continue;
    }
    resumed.push_back(r.name);
    if (absl::Status s = libvirt::ClearParkMarker(to_resume[i]); !s.ok()) {
      left.push_back(absl::StrCat("park marker left on ", r.name, ": ", s.message()));
    }
  }
  std::string account = absl::StrCat("libvirt ", conn_->uri(), ": resumed ", resumed.size(), " of ",
                                     names.size(), " domain(s) the operation had paused");
  if (!resumed.empty()) absl::StrAppend(&account, " (", absl::StrJoin(resumed, ", "), ")");
  if (!left.empty()) absl::StrAppend(&account, "; ", absl::StrJoin(left, "; "));
  if (trouble.empty()) return account;
  return absl::FailedPreconditionError(
      absl::StrCat(account, "; NOT RESUMED: ", absl::StrJoin(trouble, "; ")));
}

absl::StatusOr<std::string> ResumeAfterCrash(const LibvirtGuests* guests,
                                             const std::vector<std::string>& names,
                                             const std::string& operation,
                                             ucode::v1::Step interrupted_step,
                                             ucode::v1::Step last_step) {
  // How long to wait for each domain resumed to acknowledge.
  constexpr absl::Duration kResumeDeadline = absl::Seconds(10);
  const std::string listed = absl::StrJoin(names, ", ");
  // STEP_RELEASED is journaled only after every group released: if the journal holds it,
  // the dead instance resumed its domains itself, and one paused now was paused by
  // someone else since.
  const bool held = interrupted_step == ucode::v1::STEP_PARKED ||
                    (last_step >= ucode::v1::STEP_PARKED && last_step < ucode::v1::STEP_RELEASED);
  if (!held) {
    return absl::StrCat("libvirt: the operation released its domains (", listed,
                        ") before it was interrupted; none touched");
  }
  if (guests == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("libvirt: the operation paused ", listed,
                     " but this ucoded has no --libvirt_uri: resume them by hand"));
  }
  return guests->ResumePaused(names, operation, kResumeDeadline);
}

}  // namespace ucode::inventory
