// The dead-man for frozen VMs: a small process, forked before anything is frozen, that
// thaws every unit when the hold limit passes or the moment its parent dies, so that a
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
// Protocol on the socket: the guard sends 'R' once armed; the parent sends 'D' (dismiss:
// exit without writing, everything is thawed) or 'T' (thaw now); the guard answers 'F'
// if it had to thaw on its own (the hold limit passed) before it exits.
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
  // Forks the guard and waits (up to `start_timeout`) until it is armed.
  static absl::StatusOr<FreezeGuard> Start(const std::vector<ThawWrite>& writes,
                                           absl::Duration hold_limit,
                                           absl::Duration start_timeout = absl::Seconds(5));

  FreezeGuard(FreezeGuard&& other) noexcept;
  FreezeGuard& operator=(FreezeGuard&&) = delete;
  FreezeGuard(const FreezeGuard&) = delete;
  ~FreezeGuard();  // thaw-now ('T') and reap, if not dismissed

  [[nodiscard]] pid_t pid() const { return pid_; }

  // Ends the guard without a thaw (call after thawing). Returns true if the guard had
  // already thawed on its own because the hold limit passed.
  bool Dismiss();

 private:
  FreezeGuard(pid_t pid, UniqueFd sock) : pid_(pid), sock_(std::move(sock)) {}
  bool End(char command);

  pid_t pid_ = -1;
  UniqueFd sock_;
};

}  // namespace ucode::freeze

#endif  // UCODE_VMM_FREEZE_FREEZE_GUARD_H_
