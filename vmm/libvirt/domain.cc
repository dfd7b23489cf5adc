#include "vmm/libvirt/domain.h"

#include "absl/strings/str_cat.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {

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

absl::StatusOr<int> Domain::State() const {
  int state = 0;
  int reason = 0;
  if (virDomainGetState(handle_.get(), &state, &reason, 0) < 0) {
    return LastErrorStatus(absl::StrCat("virDomainGetState ", name_));
  }
  return state;
}

}  // namespace ucode::libvirt
