// Connection::SuspendAll / ResumeAll: one thread per domain, started together, joined
// together (orchestrator::FanOut), each reporting its own outcome against one deadline.
#include "vmm/orchestrator/fan_out.h"

#include <libvirt/libvirt.h>

#include "absl/strings/str_cat.h"
#include "vmm/libvirt/connection.h"
#include "vmm/libvirt/libvirt_status.h"

namespace ucode::libvirt {
namespace {

struct Op {
  const char* api;           // for messages
  const char* thread_prefix;
  int target_state;          // VIR_DOMAIN_PAUSED / VIR_DOMAIN_RUNNING
  int ack_event;             // VIR_DOMAIN_EVENT_SUSPENDED / VIR_DOMAIN_EVENT_RESUMED
  int (*call)(virDomainPtr);
};

constexpr Op kSuspend = {"virDomainSuspend", "park-", VIR_DOMAIN_PAUSED,
                         VIR_DOMAIN_EVENT_SUSPENDED, virDomainSuspend};
constexpr Op kResume = {"virDomainResume", "release-", VIR_DOMAIN_RUNNING,
                        VIR_DOMAIN_EVENT_RESUMED, virDomainResume};

// One domain's part. `after` is the event sequence number taken before any thread
// started, so the acknowledging event cannot be missed.
void RunOne(const Op& op, const Domain& domain, const DomainEventLog& events, uint64_t after,
            absl::Time start, absl::Time ack_deadline, DomainOpResult& result) {
  absl::StatusOr<int> state = domain.State();
  if (!state.ok()) {
    result.status = state.status();
    return;
  }
  if (*state == op.target_state) {
    // libvirt returns success without doing anything and sends no event.
    result.already_in_state = true;
    return;
  }
  if (*state != VIR_DOMAIN_RUNNING && *state != VIR_DOMAIN_PAUSED) {
    result.status = absl::FailedPreconditionError(
        absl::StrCat(op.api, " ", domain.name(), ": domain is neither running nor paused (",
                     "virDomainState ", *state, ")"));
    return;
  }
  const int rc = op.call(domain.get());
  result.call_latency = absl::Now() - start;
  if (rc < 0) {
    result.status = LastErrorStatus(absl::StrCat(op.api, " ", domain.name()));
    return;
  }
  std::optional<DomainEvent> ack =
      events.WaitFor(DomainEvent::Kind::kLifecycle, domain.uuid(), op.ack_event, after,
                     ack_deadline);
  if (!ack.has_value()) {
    result.status = absl::DeadlineExceededError(
        absl::StrCat(op.api, " ", domain.name(), " returned but no lifecycle event ",
                     op.ack_event, " arrived within ",
                     absl::FormatDuration(ack_deadline - start)));
    return;
  }
  result.ack_latency = ack->time - start;
}

}  // namespace

std::vector<DomainOpResult> Connection::SuspendAll(absl::Span<const Domain> domains,
                                                   absl::Duration ack_timeout) const {
  return FanOut(domains, /*suspend=*/true, ack_timeout);
}

std::vector<DomainOpResult> Connection::ResumeAll(absl::Span<const Domain> domains,
                                                  absl::Duration ack_timeout) const {
  return FanOut(domains, /*suspend=*/false, ack_timeout);
}

std::vector<DomainOpResult> Connection::FanOut(absl::Span<const Domain> domains, bool suspend,
                                               absl::Duration ack_timeout) const {
  const Op& op = suspend ? kSuspend : kResume;
  std::vector<DomainOpResult> results(domains.size());
  for (size_t i = 0; i < domains.size(); ++i) {
    results[i].name = domains[i].name();
    results[i].uuid = domains[i].uuid();
  }
  const uint64_t after = events_->LastSeq();
  orchestrator::FanOut(
      domains.size(), ack_timeout,
      [&](size_t i) { return absl::StrCat(op.thread_prefix, domains[i].name()); },
      [&](const orchestrator::FanOutItem& item) {
        RunOne(op, domains[item.index], *events_, after, item.deadline - ack_timeout,
               item.deadline, results[item.index]);
      });
  return results;
}

}  // namespace ucode::libvirt
