// Records a connection's domain lifecycle and agent lifecycle events, and lets callers
// wait for one with a deadline.
//
// libvirt calls the callbacks on the event loop thread (event_loop.h); everything else
// here may be called from any thread. Events of every domain on the connection are
// recorded (virConnectDomainEventRegisterAny with dom == NULL), each with a sequence
// number, so a caller takes LastSeq() before acting and then waits for an event after
// it: an event that arrives before the wait starts is not lost.
#ifndef UCODE_VMM_LIBVIRT_DOMAIN_EVENTS_H_
#define UCODE_VMM_LIBVIRT_DOMAIN_EVENTS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "vmm/libvirt/domain.h"

namespace ucode::libvirt {

struct DomainEvent {
  enum class Kind { kLifecycle, kAgent };
  uint64_t seq = 0;
  Kind kind = Kind::kLifecycle;
  std::string uuid;
  std::string name;
  // kLifecycle: virDomainEventType (VIR_DOMAIN_EVENT_SUSPENDED, ...) and its detail.
  // kAgent: virConnectDomainEventAgentLifecycleState (..._CONNECTED = 1) and reason.
  int type = 0;
  int detail = 0;
  absl::Time time;
};

class DomainEventLog {
 public:
  // Registers for both event kinds on `conn`, which must outlive the log. The event loop
  // must be running (EnsureEventLoopStarted) or no event is ever delivered.
  static absl::StatusOr<std::unique_ptr<DomainEventLog>> Register(_virConnect* conn);
  ~DomainEventLog();

  DomainEventLog(const DomainEventLog&) = delete;
  DomainEventLog& operator=(const DomainEventLog&) = delete;

  // The sequence number of the newest event recorded (0 before the first).
  [[nodiscard]] uint64_t LastSeq() const;

  // The first event of `kind` and `type` for the domain `uuid` with seq > `after`, or
  // nullopt if none arrived before `deadline`.
  [[nodiscard]] std::optional<DomainEvent> WaitFor(DomainEvent::Kind kind, absl::string_view uuid,
                                                   int type, uint64_t after,
                                                   absl::Time deadline) const;

  // How many lifecycle events of `type` the domain `uuid` had after sequence number
  // `after` (0: since the log started).
  [[nodiscard]] int CountLifecycle(absl::string_view uuid, int type, uint64_t after = 0) const;

  static constexpr size_t kMaxEvents = 4096;

  struct State;  // Shared with libvirt's callbacks; public only for the .cc's callbacks.

 private:
  DomainEventLog(_virConnect* conn, std::shared_ptr<State> state)
      : conn_(conn), state_(std::move(state)) {}

  _virConnect* conn_;
  std::shared_ptr<State> state_;
  int lifecycle_id_ = -1;
  int agent_id_ = -1;
};

}  // namespace ucode::libvirt

#endif  // UCODE_VMM_LIBVIRT_DOMAIN_EVENTS_H_
