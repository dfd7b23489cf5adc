#include "vmm/libvirt/connection.h"

#include <libvirt/libvirt.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "vmm/libvirt/agent_call.h"
#include "vmm/libvirt/event_loop.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {
namespace {

// Between two guest-ping attempts while the agent is connected but not answering yet.
constexpr absl::Duration kAgentRetryInterval = absl::Seconds(1);

bool LooksLikeUuid(absl::string_view s) {
  // The RFC 4122 text form virsh accepts for --domain: 36 characters, dashes at 8, 13,
  // 18 and 23, hex digits elsewhere.
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(absl::string_view uri) {
  RETURN_IF_ERROR(EnsureEventLoopStarted());
  std::string resolved(uri.empty() ? kDefaultUri : uri);
  ConnectHandle conn(virConnectOpen(resolved.c_str()));
  if (conn == nullptr) return LastErrorStatus(absl::StrCat("virConnectOpen ", resolved));
  std::unique_ptr<Connection> c(new Connection(resolved, std::move(conn)));
  ASSIGN_OR_RETURN(c->events_, DomainEventLog::Register(c->conn_.get()));
  return c;
}

Connection::~Connection() { events_.reset(); }

absl::StatusOr<Domain> Connection::LookupDomain(absl::string_view name_or_uuid) const {
  const std::string key(name_or_uuid);
  if (LooksLikeUuid(key)) {
    virDomainPtr dom = virDomainLookupByUUIDString(conn_.get(), key.c_str());
    if (dom != nullptr) return Domain::Adopt(dom);
    // A domain may also be named like a UUID; fall through to the name lookup.
  }
  virDomainPtr dom = virDomainLookupByName(conn_.get(), key.c_str());
  if (dom == nullptr) {
    return LastErrorStatus(absl::StrCat("lookup of domain '", key, "' on ", uri_));
  }
  return Domain::Adopt(dom);
}

absl::StatusOr<std::vector<Domain>> Connection::ListDomains(
    const DomainSelector& selector) const {
  std::vector<Domain> out;
  if (selector.all_running) {
    virDomainPtr* doms = nullptr;
    const int n = virConnectListAllDomains(conn_.get(), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) return LastErrorStatus(absl::StrCat("virConnectListAllDomains ", uri_));
    absl::Status status;
    for (int i = 0; i < n; ++i) {
      // Adopt takes each reference even after an error, so none leaks.
      absl::StatusOr<Domain> d = Domain::Adopt(doms[i]);
      if (d.ok()) {
        out.push_back(*std::move(d));
      } else if (status.ok()) {
        status = d.status();
      }
    }
    free(doms);
    RETURN_IF_ERROR(status);
  }
  for (const std::string& key : selector.names_or_uuids) {
    ASSIGN_OR_RETURN(Domain d, LookupDomain(key));
    const bool dup = std::any_of(out.begin(), out.end(),
                                 [&](const Domain& o) { return o.uuid() == d.uuid(); });
    if (!dup) out.push_back(std::move(d));
  }
  return out;
}

absl::StatusOr<Domain> Connection::CreateTransient(absl::string_view xml) const {
  const std::string text(xml);
  virDomainPtr dom = virDomainCreateXML(conn_.get(), text.c_str(), 0);
  if (dom == nullptr) return LastErrorStatus(absl::StrCat("virDomainCreateXML on ", uri_));
  return Domain::Adopt(dom);
}

absl::Status Connection::Destroy(const Domain& domain) const {
  if (virDomainDestroy(domain.get()) == 0) return absl::OkStatus();
  absl::Status status = LastErrorStatus(absl::StrCat("virDomainDestroy ", domain.name()));
  // "domain is not running" (VIR_ERR_OPERATION_INVALID) or already gone: nothing to do.
  if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) return absl::OkStatus();
  return status;
}

absl::Status Connection::WaitForAgent(const Domain& domain, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::DeadlineExceededError("no guest-ping attempted");
  while (absl::Now() < deadline) {
    const uint64_t seq = events_->LastSeq();
    const absl::Duration left = deadline - absl::Now();
    AgentCallResult ping =
        CallAgent(domain, R"({"execute":"guest-ping"})", std::min(left, absl::Seconds(2)));
    if (ping.status.ok()) return absl::OkStatus();
    last = ping.status;
    // The domain is gone or stopped: no agent will ever answer.
    if (absl::IsNotFound(last) || absl::IsFailedPrecondition(last)) return last;
    // Not connected yet: the guest opening its port raises the agent-connected event;
    // the retry interval covers an agent that is connected but not answering yet.
    (void)events_->WaitFor(DomainEvent::Kind::kAgent, domain.uuid(),
                           VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED, seq,
                           std::min(deadline, absl::Now() + kAgentRetryInterval));
  }
  return absl::DeadlineExceededError(absl::StrCat("agent of domain ", domain.name(),
                                                  " did not answer guest-ping within ",
                                                  absl::FormatDuration(timeout), ": ",
                                                  last.message()));
}

}  // namespace ucode::libvirt
