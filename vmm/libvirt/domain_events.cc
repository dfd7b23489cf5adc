#include "vmm/libvirt/domain_events.h"

#include <libvirt/libvirt.h>

#include <deque>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {

struct DomainEventLog::State {
  mutable absl::Mutex mu;
  mutable absl::CondVar changed;
  uint64_t last_seq ABSL_GUARDED_BY(mu) = 0;
  std::deque<DomainEvent> events ABSL_GUARDED_BY(mu);

  void Record(DomainEvent::Kind kind, virDomainPtr dom, int type, int detail) {
    DomainEvent event;
    event.time = absl::Now();
    event.kind = kind;
    event.type = type;
    event.detail = detail;
    // Both are local reads of the object libvirt passes in (no RPC): safe in a callback.
    const char* name = virDomainGetName(dom);
    if (name != nullptr) event.name = name;
    char uuid[VIR_UUID_STRING_BUFLEN];
    if (virDomainGetUUIDString(dom, uuid) == 0) event.uuid = uuid;
    absl::MutexLock lock(&mu);
    event.seq = ++last_seq;
    events.push_back(std::move(event));
    if (events.size() > kMaxEvents) events.pop_front();
    changed.SignalAll();
  }
};

namespace {

using StateRef = std::shared_ptr<DomainEventLog::State>;

// Callback signatures from libvirt-domain.h (virConnectDomainEventCallback and
// virConnectDomainEventAgentLifecycleCallback).
int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  (*static_cast<StateRef*>(opaque))->Record(DomainEvent::Kind::kLifecycle, dom, event, detail);
  return 0;
}

void OnAgent(virConnectPtr, virDomainPtr dom, int state, int reason, void* opaque) {
  (*static_cast<StateRef*>(opaque))->Record(DomainEvent::Kind::kAgent, dom, state, reason);
}

// libvirt calls this when it no longer uses the opaque pointer, which may be after
// virConnectDomainEventDeregisterAny returns: the state stays alive until then.
void FreeOpaque(void* opaque) { delete static_cast<StateRef*>(opaque); }

}  // namespace

absl::StatusOr<std::unique_ptr<DomainEventLog>> DomainEventLog::Register(virConnectPtr conn) {
  auto state = std::make_shared<State>();
  std::unique_ptr<DomainEventLog> log(new DomainEventLog(conn, state));
  log->lifecycle_id_ = virConnectDomainEventRegisterAny(
      conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle),
      new StateRef(state), FreeOpaque);
  if (log->lifecycle_id_ < 0) {
    // libvirt does not call FreeOpaque for a failed registration: that StateRef leaks,
    // once, on a path that fails the whole connection anyway.
    return LastErrorStatus("virConnectDomainEventRegisterAny(VIR_DOMAIN_EVENT_ID_LIFECYCLE)");
  }
  // Drivers without an agent (test:///default) refuse this one (-1, which the destructor
  // skips); lifecycle events alone still acknowledge suspend and resume: not an error.
  log->agent_id_ = virConnectDomainEventRegisterAny(
      conn, nullptr, VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnAgent),
      new StateRef(state), FreeOpaque);
  return log;
}

DomainEventLog::~DomainEventLog() {
  if (lifecycle_id_ >= 0) (void)virConnectDomainEventDeregisterAny(conn_, lifecycle_id_);
  if (agent_id_ >= 0) (void)virConnectDomainEventDeregisterAny(conn_, agent_id_);
}

uint64_t DomainEventLog::LastSeq() const {
  absl::MutexLock lock(&state_->mu);
  return state_->last_seq;
}

std::optional<DomainEvent> DomainEventLog::WaitFor(DomainEvent::Kind kind,
                                                   absl::string_view uuid, int type,
                                                   uint64_t after, absl::Time deadline) const {
  absl::MutexLock lock(&state_->mu);
  bool timed_out = false;
  for (;;) {
    for (const DomainEvent& e : state_->events) {
      if (e.seq > after && e.kind == kind && e.type == type && e.uuid == uuid) return e;
    }
    if (timed_out) return std::nullopt;
    timed_out = state_->changed.WaitWithDeadline(&state_->mu, deadline);
  }
}

int DomainEventLog::CountLifecycle(absl::string_view uuid, int type, uint64_t after) const {
  absl::MutexLock lock(&state_->mu);
  int n = 0;
  for (const DomainEvent& e : state_->events) {
    n += e.seq > after && e.kind == DomainEvent::Kind::kLifecycle && e.uuid == uuid &&
         e.type == type;
  }
  return n;
}

}  // namespace ucode::libvirt
