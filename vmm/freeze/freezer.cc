#include "vmm/freeze/freezer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace ucode::freeze {
namespace {

bool IsV2(Mechanism m) { return m != Mechanism::kV1Own; }

// `*err` (if given) gets the errno of a failed write, for callers that expect one.
absl::Status WriteFile(const std::string& path, absl::string_view value, int* err = nullptr) {
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  ssize_t n;
  do {
    n = write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (err != nullptr) *err = errno;
    return ErrnoStatus(errno, absl::StrCat("write '", value, "' to ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteFd(int fd, absl::string_view value, absl::string_view what) {
  ssize_t n;
  do {
    n = pwrite(fd, value.data(), value.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoStatus(errno, absl::StrCat("write '", value, "' to ", what));
  return absl::OkStatus();
}

std::string ReadFd(int fd) {
  char buf[512];
  ssize_t n;
  do {
    n = pread(fd, buf, sizeof(buf) - 1, 0);
  } while (n < 0 && errno == EINTR);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// cgroup.events has a line "frozen 0|1"; freezer.state is "THAWED|FREEZING|FROZEN".
bool ReadsFrozen(Mechanism m, int fd) {
  const std::string text = ReadFd(fd);
  if (IsV2(m)) return absl::StrContains(text, "frozen 1");
  return absl::StartsWith(text, "FROZEN");
}

const char* ControlName(Mechanism m) { return IsV2(m) ? "cgroup.freeze" : "freezer.state"; }
const char* FreezeValue(Mechanism m) { return IsV2(m) ? "1" : "FROZEN"; }
const char* ThawValue(Mechanism m) { return IsV2(m) ? "0" : "THAWED"; }
const char* TasksName(Mechanism m) { return IsV2(m) ? "cgroup.threads" : "tasks"; }

// The legacy freezer cannot be waited on; re-reading it this often costs a few reads per
// vCPU while giving up the core to the tasks being frozen.
constexpr absl::Duration kV1PollInterval = absl::Microseconds(20);

// A normal thread's timers get 50 µs of slack (prctl(2) PR_SET_TIMERSLACK), which would
// stretch every short ppoll() of the wait; the wait runs with 1 ns and restores it.
class TightTimers {
 public:
  TightTimers() : saved_(prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)) {
    prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
  }
  ~TightTimers() {
    if (saved_ > 0) prctl(PR_SET_TIMERSLACK, saved_, 0, 0, 0);
  }
  TightTimers(const TightTimers&) = delete;
  TightTimers& operator=(const TightTimers&) = delete;

 private:
  const int saved_;
};
// cgroup.events notifications are rate-limited per file: one within
// CGROUP_FILE_NOTIFY_MIN_INTV (HZ/100 jiffies, ~10 ms) of the previous one is deferred to a
// timer (kernel/cgroup/cgroup.c, cgroup_file_notify()). A freeze soon after a thaw (or
// after threads moved in) would wait that long for its POLLPRI; so the wait is also
// bounded by this and the files are re-read.
constexpr absl::Duration kNotifyRecheck = absl::Microseconds(20);

}  // namespace

absl::StatusOr<std::unique_ptr<Freezer>> Freezer::Prepare(std::vector<FreezeTarget> targets) {
  std::unique_ptr<Freezer> f(new Freezer(std::move(targets)));
  for (size_t t = 0; t < f->targets_.size(); ++t) {
    for (const FreezeUnit& spec : f->targets_[t].plan.units) {
      f->units_.push_back(Unit{.target = t, .spec = &spec});
    }
  }
  f->timings_.resize(f->targets_.size());
  for (Unit& u : f->units_) {
    absl::Status s = f->SetUp(u);
    if (!s.ok()) {
      // The destructor puts back what was moved.
      return absl::Status(s.code(), absl::StrCat(f->targets_[u.target].name, ": ", s.message()));
    }
  }
  return f;
}

absl::Status Freezer::SetUp(Unit& u) {
  const FreezeUnit& spec = *u.spec;
  const Mechanism m = spec.mechanism;
  if (m != Mechanism::kV2InPlace) {
    if (mkdir(spec.dir.c_str(), 0755) != 0) {
      // A leftover of ours from a crashed run is reused only if it is empty (rmdir works).
      if (errno != EEXIST || rmdir(spec.dir.c_str()) != 0 || mkdir(spec.dir.c_str(), 0755) != 0) {
        return ErrnoStatus(errno, absl::StrCat("mkdir ", spec.dir));
      }
    }
    u.created = true;
    if (m == Mechanism::kV2Own) {
      absl::Status s = WriteFile(spec.dir + "/cgroup.type", "threaded");
      if (!s.ok()) return s;
    }
    for (pid_t tid : spec.tids) {
      absl::Status s = WriteFile(absl::StrCat(spec.dir, "/", TasksName(m)), absl::StrCat(tid));
      if (!s.ok()) return s;
      u.moved.push_back(tid);
    }
  }
  const std::string control = absl::StrCat(spec.dir, "/", ControlName(m));
  u.control = UniqueFd(open(control.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
  if (!u.control) return ErrnoStatus(errno, absl::StrCat("open ", control));
  const std::string events = IsV2(m) ? spec.dir + "/cgroup.events" : control;
  u.events = UniqueFd(open(events.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!u.events) return ErrnoStatus(errno, absl::StrCat("open ", events));
  if (m == Mechanism::kV2InPlace && absl::StartsWith(ReadFd(u.control.get()), "1")) {
    u.ours_to_freeze = false;
    timings_[u.target].frozen_by_other = true;
  }
  return absl::OkStatus();
}

Freezer::~Freezer() { Restore().IgnoreError(); }

std::vector<ThawWrite> Freezer::ThawWrites() const {
  std::vector<ThawWrite> out;
  for (const Unit& u : units_) {
    if (!u.ours_to_freeze) continue;
    out.push_back({absl::StrCat(u.spec->dir, "/", ControlName(u.spec->mechanism)),
                   ThawValue(u.spec->mechanism)});
  }
  return out;
}

std::vector<std::string> Freezer::WriteControls(bool freeze) {
  std::vector<std::string> failed;
  for (Unit& u : units_) {
    if (freeze ? !u.ours_to_freeze : !u.frozen) continue;
    const Mechanism m = u.spec->mechanism;
    absl::Status s = WriteFd(u.control.get(), freeze ? FreezeValue(m) : ThawValue(m), u.spec->dir);
    if (!s.ok()) {
      failed.push_back(absl::StrCat(targets_[u.target].name, ": ", s.message()));
      continue;
    }
    u.frozen = freeze;
  }
  return failed;
}

absl::Status Freezer::Freeze(absl::Duration deadline) {
  const absl::Time start = absl::Now();
  std::vector<std::string> failed = WriteControls(true);
  std::vector<bool> done(units_.size(), false);
  absl::Status waited = failed.empty() ? WaitFrozen(start + deadline, start, done)
                                       : absl::OkStatus();
  if (failed.empty() && waited.ok()) return absl::OkStatus();
  Thaw().IgnoreError();
  if (!failed.empty()) {
    return absl::AbortedError(absl::StrCat("freeze failed (", absl::StrJoin(failed, "; "),
                                           "); thawed every VM"));
  }
  return waited;
}

absl::Status Freezer::WaitFrozen(absl::Time deadline, absl::Time start, std::vector<bool>& done) {
  TightTimers tight;
  for (;;) {
    std::vector<pollfd> fds;
    bool any_v1 = false;
    for (size_t i = 0; i < units_.size(); ++i) {
      Unit& u = units_[i];
      if (!u.ours_to_freeze || done[i]) continue;
      // Read before polling: a kernfs file is "changed" relative to its last read.
      if (ReadsFrozen(u.spec->mechanism, u.events.get())) {
        done[i] = true;
        TargetTiming& t = timings_[u.target];
        t.freeze_latency = std::max(t.freeze_latency, absl::Now() - start);
        continue;
      }
      if (IsV2(u.spec->mechanism)) {
        fds.push_back({.fd = u.events.get(), .events = POLLPRI});
      } else {
        any_v1 = true;
      }
    }
    if (fds.empty() && !any_v1) return absl::OkStatus();
    const absl::Time now = absl::Now();
    if (now >= deadline) break;
    absl::Duration wait = std::min(deadline - now, kNotifyRecheck);
    if (any_v1) wait = std::min(wait, kV1PollInterval);
    const timespec ts = absl::ToTimespec(wait);
    if (ppoll(fds.data(), fds.size(), &ts, nullptr) < 0 && errno != EINTR) {
      return ErrnoStatus(errno, "ppoll cgroup.events");
    }
  }
  std::vector<std::string> late;
  for (size_t i = 0; i < units_.size(); ++i) {
    if (!units_[i].ours_to_freeze || done[i]) continue;
    std::vector<std::string> v;
    for (int n : units_[i].spec->vcpus) v.push_back(absl::StrCat("vcpu ", n));
    late.push_back(absl::StrCat(targets_[units_[i].target].name, " ", absl::StrJoin(v, ", ")));
  }
  return absl::AbortedError(absl::StrCat("freeze: not frozen within ",
                                         absl::FormatDuration(deadline - start), ": ",
                                         absl::StrJoin(late, "; "), "; thawed every VM"));
}

absl::Status Freezer::Thaw() {
  std::vector<std::string> failed = WriteControls(false);
  if (failed.empty()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("thaw failed: ", absl::StrJoin(failed, "; ")));
}

absl::Status Freezer::Restore() {
  absl::Status status = Thaw();
  std::vector<std::string> failed;
  for (Unit& u : units_) {
    const Mechanism m = u.spec->mechanism;
    for (pid_t tid : u.moved) {
      int err = 0;
      absl::Status s =
          WriteFile(absl::StrCat(u.spec->origin, "/", TasksName(m)), absl::StrCat(tid), &err);
      // ESRCH: the thread exited meanwhile; nothing to put back.
      if (!s.ok() && err != ESRCH) {
        failed.push_back(absl::StrCat(targets_[u.target].name, ": tid ", tid, ": ", s.message()));
      }
    }
    u.moved.clear();
    u.control.Reset();
    u.events.Reset();
    if (u.created) {
      if (rmdir(u.spec->dir.c_str()) != 0 && errno != ENOENT) {
        failed.push_back(
            absl::StrCat(targets_[u.target].name, ": ", ErrnoStatus(errno, "rmdir " + u.spec->dir).message()));
      }
      u.created = false;
    }
  }
  if (!failed.empty() && status.ok()) {
    status = absl::InternalError(absl::StrCat("restore: ", absl::StrJoin(failed, "; ")));
  }
  return status;
}

}  // namespace ucode::freeze
