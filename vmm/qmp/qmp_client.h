// A client for the QEMU Machine Protocol (QMP) of a QEMU we did not start through
// libvirt: `qemu-system-x86_64 ... -qmp unix:PATH,server=on,wait=off`.
//
// Protocol (QEMU docs/interop/qmp-spec.rst): the server greets with {"QMP": {...}}; the
// client must send qmp_capabilities before any other command; each command
// {"execute": NAME, "arguments": {...}, "id": ID} gets one {"return": ...} or
// {"error": {"class", "desc"}} carrying the same id; asynchronous events
// {"event": NAME, "data": {...}, "timestamp": {...}} may arrive at any time, also
// between a command and its reply, and are kept here until someone waits for them.
//
// Every call takes a timeout: a hung or hostile QEMU costs at most that long.
// Not thread-safe: one owner thread drives the client.
#ifndef UCODE_VMM_QMP_QMP_CLIENT_H_
#define UCODE_VMM_QMP_QMP_CLIENT_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "vmm/qmp/line_socket.h"

namespace ucode::qmp {

struct QmpEvent {
  std::string name;      // "STOP", "RESUME", ...
  nlohmann::json data;   // the event's "data" object (may be null)
  absl::Time qemu_time;  // QEMU's "timestamp" (host clock when QEMU emitted it)
  absl::Time received;   // when this client read it
};

class QmpClient {
 public:
  // Connects (waiting for the socket to appear), reads the greeting and negotiates
  // capabilities, all within `timeout`.
  static absl::StatusOr<std::unique_ptr<QmpClient>> Connect(absl::string_view socket_path,
                                                            absl::Duration timeout);

  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // The greeting's "QMP" object (version, capabilities).
  [[nodiscard]] const nlohmann::json& greeting() const { return greeting_; }

  // Runs one command and returns its "return" value. A QMP error becomes a Status naming
  // the command with QEMU's class and description (CommandNotFound → UNIMPLEMENTED,
  // DeviceNotFound → NOT_FOUND, any other class → FAILED_PRECONDITION).
  absl::StatusOr<nlohmann::json> Execute(absl::string_view command,
                                         const nlohmann::json& arguments,
                                         absl::Duration timeout);

  // `stop` / `cont`: pause and resume every vCPU. QEMU answers once the vCPUs are
  // stopped (vm_stop pauses them before the reply) and emits STOP / RESUME.
  absl::Status Stop(absl::Duration timeout);
  absl::Status Cont(absl::Duration timeout);

  // `query-status`: the run state, "running", "paused", "prelaunch", ...
  absl::StatusOr<std::string> QueryStatus(absl::Duration timeout);

  // The oldest unclaimed event called `name` (received earlier or arriving within
  // `timeout`); it is removed from the queue. Other events stay queued.
  absl::StatusOr<QmpEvent> WaitForEvent(absl::string_view name, absl::Duration timeout);

  // Events received and not yet claimed by WaitForEvent (bounded: oldest dropped).
  [[nodiscard]] const std::deque<QmpEvent>& pending_events() const { return events_; }

  static constexpr size_t kMaxPendingEvents = 1024;

 private:
  explicit QmpClient(LineSocket socket) : socket_(std::move(socket)) {}

  // Reads one message; queues it if it is an event and returns it otherwise.
  absl::StatusOr<nlohmann::json> ReadMessage(absl::Time deadline, bool* was_event);

  LineSocket socket_;
  nlohmann::json greeting_;
  std::deque<QmpEvent> events_;
  int64_t next_id_ = 1;
};

}  // namespace ucode::qmp

#endif  // UCODE_VMM_QMP_QMP_CLIENT_H_
