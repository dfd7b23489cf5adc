// The dead-man for frozen VMs: a small process, forked before anything is frozen, that
// thaws every unit when a hold passes its limit or the moment its parent dies, so that a
// `kill -9` of ucodectl or ucoded never leaves a guest frozen. A frozen cgroup stays
// frozen when the process that froze it dies; only a write thaws it.
//
// The guard watches a pidfd of its parent (pidfd_open(2): readable when the process
// exits) and a socket to it (EOF when the parent's end closes); it runs in its own
// session so a terminal's ^C reaches only the coordinator, which thaws on its own path.
// Between fork and exit it only makes system calls on memory prepared before the fork
// (fork(2) in a threaded process: only async-signal-safe calls in the child), and it
// closes every inherited descriptor but its socket first.
//
// One guard serves many holds (a benchmark's rounds, or one operation): Arm() before each
// freeze starts the hold limit, Disarm() after the thaw stops it; both are one send(),
// no round trip, so they cost the hold nothing measurable.
//
// Socket protocol. Parent to guard: 'A' arm (the limit runs from when the guard reads
// it), 'C' clear, 'P' ping, 'T' thaw and exit. Guard to parent:
// 'R' armed and watching (once), 'F' thawed because the limit passed, 'p' pong.
#ifndef UCODE_VMM_FREEZE_FREEZE_GUARD_H_
#define UCODE_VMM_FREEZE_FREEZE_GUARD_H_

#include <sys/types.h>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "host/base/unique_fd.h"
#include "vmm/freeze/freezer.h"

namespace ucode::freeze {

class FreezeGuard {
 public:
  // Forks the guard and waits (up to `start_timeout`) until it watches its parent.
  static absl::StatusOr<FreezeGuard> Start(const std::vector<ThawWrite>& writes,
                                           absl::Duration hold_limit,
                                           absl::Duration start_timeout = absl::Seconds(5));

  FreezeGuard(FreezeGuard&& other) noexcept;
  FreezeGuard& operator=(FreezeGuard&&) = delete;
  FreezeGuard(const FreezeGuard&) = delete;
  ~FreezeGuard();  // thaw-now ('T') and reap, if not dismissed

  [[nodiscard]] pid_t pid() const { return pid_; }

  // Before freezing: the hold limit starts.
  [[nodiscard]] absl::Status Arm();
  // After thawing: the hold limit stops.
  void Disarm();
  // Holds the guard ended by thawing on its own since the last call (a round trip).
  [[nodiscard]] int TakeFired();

 private:
  FreezeGuard(pid_t pid, UniqueFd sock) : pid_(pid), sock_(std::move(sock)) {}
  int End(char command);
  // Reads guard messages until `until` (or EOF when 0); returns the 'F's seen.
  int ReadUntil(char until);

  pid_t pid_ = -1;
  UniqueFd sock_;
};

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_FREEZE_GUARD_H_
