#include "guest-agent/agent_loop.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ucode_agent {
namespace {

constexpr int kIdleRecheckMs = 1000;
constexpr int kMinReopenDelayMs = 100;
constexpr int kMaxReopenDelayMs = 2000;
// Replies waiting for the host to read them. Above this the agent stops reading requests
// (backpressure: the host's writes then block) instead of dropping replies.
constexpr size_t kMaxPendingReplyBytes = 256 * 1024;

void Log(const std::string& message) {
  std::fprintf(stderr, "ucode-agent: %s\n", message.c_str());
}

enum class Wake { kTimeout, kSigio, kStop, kChannel };

// Waits for the channel (if `fd` >= 0: `events` on it), a signal, or `timeout_ms`.
Wake Wait(int sigfd, int fd, short events, int timeout_ms, short* revents) {
  pollfd fds[2] = {{sigfd, POLLIN, 0}, {fd, events, 0}};
  int r = poll(fds, fd >= 0 ? 2 : 1, timeout_ms);
  if (r < 0) return Wake::kTimeout;  // EINTR: re-evaluate
  if (fds[0].revents & POLLIN) {
    signalfd_siginfo info;
    if (read(sigfd, &info, sizeof(info)) == sizeof(info)) {
      if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) return Wake::kStop;
      if (info.ssi_signo == SIGIO) return Wake::kSigio;
    }
  }
  if (fd >= 0 && fds[1].revents != 0) {
    *revents = fds[1].revents;
    return Wake::kChannel;
  }
  return Wake::kTimeout;
}

// Writes what the channel takes now (it is non-blocking) from the front of `pending`.
// False on a write error other than a full queue.
bool FlushSome(int fd, std::string* pending) {
  size_t done = 0;
  while (done < pending->size()) {
    ssize_t n = write(fd, pending->data() + done, pending->size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    pending->erase(0, done);
    return false;
  }
  pending->erase(0, done);
  return true;
}

}  // namespace

int RunAgentLoop(const ChannelOptions& options, Session* session) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGIO, SIGHUP}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a vanished socket peer is an error return, not a death
  ucode::UniqueFd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd.valid()) {
    Log(std::string("signalfd: ") + std::strerror(errno));
    return 1;
  }

  ucode::UniqueFd channel;
  ChannelKind kind = ChannelKind::kCharDevice;
  bool host_connected = true;  // assume so until a hang-up says otherwise
  int reopen_delay_ms = kMinReopenDelayMs;
  std::string last_error;
  std::string buf(64 * 1024, '\0');
  std::string pending;  // replies not yet taken by the channel, in order

  while (true) {
    if (!channel.valid()) {
      std::string error;
      channel = OpenChannel(options, &kind, &error);
      if (!channel.valid()) {
        if (kind == ChannelKind::kInheritedFd) {
          Log(error);
          return 1;
        }
        if (error != last_error) Log(error + "; retrying");
        last_error = error;
        short ignored;
        if (Wait(sigfd.get(), -1, 0, reopen_delay_ms, &ignored) == Wake::kStop) return 0;
        reopen_delay_ms = std::min(reopen_delay_ms * 2, kMaxReopenDelayMs);
        continue;
      }
      if (!last_error.empty()) Log("channel open");
      last_error.clear();
      reopen_delay_ms = kMinReopenDelayMs;
      host_connected = true;
      session->Reset();
      pending.clear();
    }

    // Backpressure: read requests only while the host takes the replies.
    short events = 0;
    if (pending.size() < kMaxPendingReplyBytes) events |= POLLIN;
    if (!pending.empty()) events |= POLLOUT;
    short revents = 0;
    Wake wake = Wait(sigfd.get(), host_connected ? channel.get() : -1, events,
                     host_connected ? -1 : kIdleRecheckMs, &revents);
    if (wake == Wake::kStop) return 0;
    if (wake == Wake::kSigio || (wake == Wake::kTimeout && !host_connected)) {
      host_connected = true;
      continue;
    }
    if (wake != Wake::kChannel) continue;

    if ((revents & POLLOUT) && !FlushSome(channel.get(), &pending)) {
      Log(std::string("write: ") + std::strerror(errno));
    }
    ssize_t n = 0;
    const bool may_read = pending.size() < kMaxPendingReplyBytes;
    if ((may_read && (revents & POLLIN)) || (revents & (POLLHUP | POLLERR))) {
      n = read(channel.get(), buf.data(), buf.size());
    } else {
      continue;
    }
    if (n > 0) {
      session->Feed(std::string_view(buf.data(), static_cast<size_t>(n)), &pending);
      if (!FlushSome(channel.get(), &pending)) Log(std::string("write: ") + std::strerror(errno));
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      // Readable without data and no hang-up: nothing to do. With a hang-up
      // (virtio port, host side closed) stop polling until the host is back.
      if (revents & POLLHUP) {
        host_connected = false;
        pending.clear();
      }
      continue;
    }
    // EOF, hang-up or a read error: the host side went away, and with it the replies
    // it had not read (a reconnecting host resyncs with guest-sync).
    session->Reset();
    pending.clear();
    if (kind == ChannelKind::kInheritedFd) return 0;
    if (kind == ChannelKind::kUnixSocket || n < 0) {
      if (n < 0) Log(std::string("read: ") + std::strerror(errno) + "; reopening");
      channel.Reset();
      short ignored;
      if (Wait(sigfd.get(), -1, 0, reopen_delay_ms, &ignored) == Wake::kStop) return 0;
      continue;
    }
    host_connected = false;
  }
}

}  // namespace ucode_agent
