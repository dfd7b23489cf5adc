// Owning handles for libvirt objects, and the per-domain result of a fan-out operation.
//
// Only vmm/libvirt/*.cc include <libvirt/libvirt.h>: callers see libvirt's objects as the
// incomplete types below (virConnectPtr is `_virConnect*`, virDomainPtr `_virDomain*`), and
// the states they act on as the named numbers below. Tests may still call libvirt on get().
#ifndef UCODE_VMM_LIBVIRT_DOMAIN_H_
#define UCODE_VMM_LIBVIRT_DOMAIN_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct _virConnect;
struct _virDomain;

namespace ucode::libvirt {

// libvirt's virDomainState numbers (domain.cc checks they match libvirt-domain.h).
inline constexpr int kDomainRunning = 1;  // VIR_DOMAIN_RUNNING
inline constexpr int kDomainPaused = 3;   // VIR_DOMAIN_PAUSED
// virDomainPausedReason VIR_DOMAIN_PAUSED_USER: virDomainSuspend (`virsh suspend`, or us).
inline constexpr int kPausedByUser = 1;

// "running", "paused", "shut-off", ... for a virDomainState number ("unknown" otherwise).
const char* DomainStateName(int state);

struct ConnectCloser {
  void operator()(_virConnect* conn) const;  // virConnectClose
};
// A connection reference: virConnectClose drops it (libvirt refcounts connections).
using ConnectHandle = std::unique_ptr<_virConnect, ConnectCloser>;

struct DomainFreer {
  void operator()(_virDomain* dom) const;  // virDomainFree
};
// A domain object reference: virDomainFree drops the reference, never the VM.
using DomainHandle = std::unique_ptr<_virDomain, DomainFreer>;

// A domain reference with its identity read once (name and UUID are local lookups in
// libvirt, but reading them once keeps reports consistent if the domain is renamed).
// Move-only. Safe to use from several threads at once: libvirt API calls are
// thread-safe on one virDomainPtr (https://libvirt.org/threading.html).
class Domain {
 public:
  // Takes ownership of `dom` (also on error).
  static absl::StatusOr<Domain> Adopt(_virDomain* dom);

  Domain(Domain&&) = default;
  Domain& operator=(Domain&&) = default;

  [[nodiscard]] _virDomain* get() const { return handle_.get(); }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& uuid() const { return uuid_; }

  // Another reference to the same libvirt domain object (virDomainRef).
  [[nodiscard]] absl::StatusOr<Domain> Duplicate() const;

  // virDomainGetInfo's nrVirtCpu: the vCPUs the domain runs now.
  [[nodiscard]] absl::StatusOr<int> VcpuCount() const;

  // virDomainGetState: kDomainRunning, kDomainPaused, ... and, when `reason` is given,
  // libvirt's reason for that state (for kDomainPaused: kPausedByUser, ...).
  [[nodiscard]] absl::StatusOr<int> State(int* reason = nullptr) const;

 private:
  Domain(DomainHandle handle, std::string name, std::string uuid)
      : handle_(std::move(handle)), name_(std::move(name)), uuid_(std::move(uuid)) {}

  DomainHandle handle_;
  std::string name_;
  std::string uuid_;
};

// Which domains an operation acts on, as virsh names them (`--domain` takes a name or a
// UUID; `--all` means every running domain).
struct DomainSelector {
  bool all_running = false;
  std::vector<std::string> names_or_uuids;
};

// One domain's outcome in SuspendAll/ResumeAll.
struct DomainOpResult {
  std::string name;
  std::string uuid;
  absl::Status status;
  // The domain was already in the requested state, so libvirt did nothing and no event
  // follows. A caller must not resume a domain that was already paused before it
  // suspended it: someone else paused it.
  bool already_in_state = false;
  // From the start of the fan-out to the return of virDomainSuspend/virDomainResume.
  absl::Duration call_latency;
  // From the start of the fan-out to the lifecycle event that acknowledges the change
  // (VIR_DOMAIN_EVENT_SUSPENDED / VIR_DOMAIN_EVENT_RESUMED); zero if none was seen.
  absl::Duration ack_latency;
};

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_DOMAIN_H_
