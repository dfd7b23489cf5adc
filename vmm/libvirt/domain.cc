#include "vmm/libvirt/domain.h"

#include <libvirt/libvirt.h>

#include "absl/strings/str_cat.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {

static_assert(kDomainRunning == VIR_DOMAIN_RUNNING && kDomainPaused == VIR_DOMAIN_PAUSED &&
              kPausedByUser == VIR_DOMAIN_PAUSED_USER);

const char* DomainStateName(int state) {
  switch (state) {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "blocked";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "shutting-down";
    case VIR_DOMAIN_SHUTOFF:
      return "shut-off";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "pm-suspended";
    default:
      return "unknown";
  }
}

void ConnectCloser::operator()(virConnectPtr conn) const { virConnectClose(conn); }

void DomainFreer::operator()(virDomainPtr dom) const { virDomainFree(dom); }

absl::StatusOr<Domain> Domain::Adopt(virDomainPtr dom) {
  DomainHandle handle(dom);
  if (dom == nullptr) return absl::InvalidArgumentError("Domain::Adopt: null virDomainPtr");
  const char* name = virDomainGetName(dom);
  if (name == nullptr) return LastErrorStatus("virDomainGetName");
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, uuid) < 0) {
    return LastErrorStatus(absl::StrCat("virDomainGetUUIDString ", name));
  }
  return Domain(std::move(handle), name, uuid);
}

absl::StatusOr<Domain> Domain::Duplicate() const {
  if (virDomainRef(handle_.get()) < 0) return LastErrorStatus(absl::StrCat("virDomainRef ", name_));
  return Domain(DomainHandle(handle_.get()), name_, uuid_);
}

absl::StatusOr<int> Domain::VcpuCount() const {
  virDomainInfo info;
  if (virDomainGetInfo(handle_.get(), &info) < 0) {
    return LastErrorStatus(absl::StrCat("virDomainGetInfo ", name_));
  }
  return static_cast<int>(info.nrVirtCpu);
}

absl::StatusOr<int> Domain::State(int* reason) const {
  int state = 0;
  int why = 0;
  if (virDomainGetState(handle_.get(), &state, &why, 0) < 0) {
    return LastErrorStatus(absl::StrCat("virDomainGetState ", name_));
  }
  if (reason != nullptr) *reason = why;
  return state;
}

}  // namespace ucode::libvirt
