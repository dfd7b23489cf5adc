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
constexpr int kWriteTimeoutMs = 5000;

void Log(const std::string& message) {
  std::fprintf(stderr, "ucode-agent: %s\n", message.c_str());
}

enum class Wake { kTimeout, kSigio, kStop, kChannel };

// Waits for the channel (if `fd` >= 0), a signal, or `timeout_ms`.
Wake Wait(int sigfd, int fd, int timeout_ms, short* revents) {
  pollfd fds[2] = {{sigfd, POLLIN, 0}, {fd, POLLIN, 0}};
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

// Writes all of `data`, waiting for a full virtio queue or socket buffer to
// drain for at most kWriteTimeoutMs in total. A reply that cannot be sent is
// dropped: the host will resync with guest-sync.
bool WriteReply(int fd, const std::string& data) {
  size_t done = 0;
  int waited_ms = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return false;
    if (waited_ms >= kWriteTimeoutMs) return false;
    pollfd p = {fd, POLLOUT, 0};
    poll(&p, 1, 100);
    waited_ms += 100;
    if (p.revents & (POLLHUP | POLLERR)) return false;
  }
  return true;
}

}  // namespace

int RunAgentLoop(const ChannelOptions& options, Session* session) {
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGINT, SIGIO, SIGHUP}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a vanished socket peer is an error return, not a death
  UniqueFd sigfd(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd.valid()) {
    Log(std::string("signalfd: ") + std::strerror(errno));
    return 1;
  }

  UniqueFd channel;
  ChannelKind kind = ChannelKind::kCharDevice;
  bool host_connected = true;  // assume so until a hang-up says otherwise
  int reopen_delay_ms = kMinReopenDelayMs;
  std::string last_error;
  std::string buf(64 * 1024, '\0');

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
        if (Wait(sigfd.get(), -1, reopen_delay_ms, &ignored) == Wake::kStop) return 0;
        reopen_delay_ms = std::min(reopen_delay_ms * 2, kMaxReopenDelayMs);
        continue;
      }
      if (!last_error.empty()) Log("channel open");
      last_error.clear();
      reopen_delay_ms = kMinReopenDelayMs;
      host_connected = true;
      session->Reset();
    }

    short revents = 0;
    Wake wake = Wait(sigfd.get(), host_connected ? channel.get() : -1,
                     host_connected ? -1 : kIdleRecheckMs, &revents);
    if (wake == Wake::kStop) return 0;
    if (wake == Wake::kSigio || (wake == Wake::kTimeout && !host_connected)) {
      host_connected = true;
      continue;
    }
    if (wake != Wake::kChannel) continue;

    ssize_t n = 0;
    if (revents & (POLLIN | POLLHUP | POLLERR)) n = read(channel.get(), buf.data(), buf.size());
    if (n > 0) {
      std::string out;
      session->Feed(std::string_view(buf.data(), static_cast<size_t>(n)), &out);
      if (!out.empty() && !WriteReply(channel.get(), out)) Log("reply dropped: host not reading");
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
      // Readable without data and no hang-up: nothing to do. With a hang-up
      // (virtio port, host side closed) stop polling until the host is back.
      if (revents & POLLHUP) host_connected = false;
      continue;
    }
    // EOF, hang-up or a read error: the host side went away.
    session->Reset();
    if (kind == ChannelKind::kInheritedFd) return 0;
    if (kind == ChannelKind::kUnixSocket || n < 0) {
      if (n < 0) Log(std::string("read: ") + std::strerror(errno) + "; reopening");
      channel.Reset();
      short ignored;
      if (Wait(sigfd.get(), -1, reopen_delay_ms, &ignored) == Wake::kStop) return 0;
      continue;
    }
    host_connected = false;
  }
}

}  // namespace ucode_agent
