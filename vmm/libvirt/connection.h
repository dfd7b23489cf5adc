// A libvirt connection for ucode: pick domains, park (suspend) and release (resume) them
// all at once, and talk to their guest agents.
//
// URIs are the ones `virsh -c` takes (https://libvirt.org/uri.html): qemu:///system on a
// host; qemu:///embed?root=DIR in tests, which runs the QEMU driver inside this process
// (https://libvirt.org/drvqemu.html#embedded-driver) and therefore needs the event loop
// this class starts.
//
// Threads: every method may be called from any thread; SuspendAll/ResumeAll run one
// thread per domain ("park-<name>"/"release-<name>") and return when all are done.
#ifndef UCODE_VMM_LIBVIRT_CONNECTION_H_
#define UCODE_VMM_LIBVIRT_CONNECTION_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "vmm/libvirt/domain.h"
#include "vmm/libvirt/domain_events.h"

namespace ucode::libvirt {

inline constexpr absl::string_view kDefaultUri = "qemu:///system";

class Connection {
 public:
  // Opens `uri` read-write (an empty uri means kDefaultUri) and starts recording domain
  // events. Starts the process's libvirt event loop first if needed.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(absl::string_view uri);
  ~Connection();

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] const std::string& uri() const { return uri_; }
  [[nodiscard]] _virConnect* get() const { return conn_.get(); }
  [[nodiscard]] const DomainEventLog& events() const { return *events_; }

  // A domain by name, or by UUID when `name_or_uuid` parses as one (as virsh does).
  [[nodiscard]] absl::StatusOr<Domain> LookupDomain(absl::string_view name_or_uuid) const;

  // The selected domains, in selector order (all running ones: libvirt's order). Fails
  // with NOT_FOUND naming the first domain that does not exist; a selected domain that
  // exists but is not running is returned (SuspendAll reports it).
  [[nodiscard]] absl::StatusOr<std::vector<Domain>> ListDomains(
      const DomainSelector& selector) const;

  // Starts a transient domain from XML (virDomainCreateXML): it disappears when it stops.
  [[nodiscard]] absl::StatusOr<Domain> CreateTransient(absl::string_view xml) const;

  // Stops the domain at once (virDomainDestroy). OK if it was not running.
  absl::Status Destroy(const Domain& domain) const;

  // Suspends every domain concurrently (virDomainSuspend) and waits, up to `ack_timeout`
  // from the start, for each one's VIR_DOMAIN_EVENT_SUSPENDED event. One result per
  // domain, in input order; a domain whose event did not come in time gets
  // DEADLINE_EXCEEDED even though libvirt may have paused it.
  [[nodiscard]] std::vector<DomainOpResult> SuspendAll(absl::Span<const Domain> domains,
                                                       absl::Duration ack_timeout) const;
  // The same with virDomainResume and VIR_DOMAIN_EVENT_RESUMED.
  [[nodiscard]] std::vector<DomainOpResult> ResumeAll(absl::Span<const Domain> domains,
                                                      absl::Duration ack_timeout) const;

  // Waits until the domain's agent answers guest-ping (CallAgent), up to `timeout`: tries a ping,
  // and while the agent is not connected, waits for its agent-connected event (or a
  // short retry interval) before trying again. Returns the last error on timeout.
  absl::Status WaitForAgent(const Domain& domain, absl::Duration timeout) const;

 private:
  Connection(std::string uri, ConnectHandle conn) : uri_(std::move(uri)), conn_(std::move(conn)) {}

  std::vector<DomainOpResult> FanOut(absl::Span<const Domain> domains, bool suspend,
                                     absl::Duration ack_timeout) const;

  std::string uri_;
  ConnectHandle conn_;
  // Declared after conn_: destroyed (deregistered) before the connection closes.
  std::unique_ptr<DomainEventLog> events_;
};

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_CONNECTION_H_
