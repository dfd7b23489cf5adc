// ucoded: the per-host ucode daemon. Runs in the foreground (systemd Type=simple, see
// ucoded.service), logs key=value lines on stderr, stops gracefully on SIGTERM/SIGINT.
#include <grp.h>
#include <pwd.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "host/base/status_macros.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/log.h"
#include "vmm/daemon/runner/runner_flags.h"

ABSL_FLAG(std::string, socket, "/run/ucoded/ucoded.sock",
          "Unix socket to serve on (empty: none)");
ABSL_FLAG(std::string, socket_mode, "0660", "permissions of the Unix socket (octal)");
ABSL_FLAG(std::vector<std::string>, allow_uids, {"0"},
          "users (uid or name) allowed to call over the Unix socket (SO_PEERCRED)");
ABSL_FLAG(std::vector<std::string>, allow_gids, {},
          "groups (gid or name, e.g. ucode) whose members, primary or supplementary, may call "
          "over the Unix socket");
ABSL_FLAG(int32_t, max_connections_per_uid, 256,
          "connections one uid may hold open on the Unix socket (more are closed at once)");
ABSL_FLAG(std::string, tcp, "", "host:port to serve on with mutual TLS (empty: no TCP)");
ABSL_FLAG(std::string, tls_cert, "", "server certificate (PEM) for --tcp");
ABSL_FLAG(std::string, tls_key, "", "server private key (PEM) for --tcp");
ABSL_FLAG(std::string, tls_client_ca, "", "CA (PEM) that client certificates must chain to");
ABSL_FLAG(std::string, journal, "/var/lib/ucoded/journal.sqlite", "SQLite operation journal");
ABSL_FLAG(uint64_t, max_image_bytes, 16u << 20, "largest image accepted");
ABSL_FLAG(uint64_t, max_image_bytes_in_flight, 64u << 20,
          "image bytes held at once over all calls and the running operation (more: "
          "RESOURCE_EXHAUSTED)");
ABSL_FLAG(std::vector<std::string>, image_root,
          std::vector<std::string>({"/lib/firmware/intel-ucode", "/var/lib/ucode/images"}),
          "directories a request's host_path may name an image beneath (comma-separated)");
ABSL_FLAG(int64_t, shutdown_grace_ms, 2000,
          "after SIGTERM, how long calls in flight may finish (operations are waited for)");

namespace ucode::daemon {
namespace {

// Numeric ids, or user/group names looked up with `get` (getpwnam_r/getgrnam_r), whose
// entry holds the id in `id`.
template <typename Entry, typename T>
absl::StatusOr<std::vector<T>> ParseIds(const std::vector<std::string>& in, absl::string_view flag,
                                        int (*get)(const char*, Entry*, char*, size_t, Entry**),
                                        T Entry::*id) {
  std::vector<T> out;
  for (const std::string& s : in) {
    uint32_t v = 0;
    Entry entry, *found = nullptr;
    char buf[4096];
    if (absl::SimpleAtoi(s, &v)) {
      out.push_back(static_cast<T>(v));
    } else if (get(s.c_str(), &entry, buf, sizeof(buf), &found) == 0 && found != nullptr) {
      out.push_back(entry.*id);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", s, "' is neither an id nor a known name"));
    }
  }
  return out;
}

absl::StatusOr<DaemonOptions> OptionsFromFlags() {
  DaemonOptions o;
  o.unix_socket = absl::GetFlag(FLAGS_socket);
  const std::string mode_flag = absl::GetFlag(FLAGS_socket_mode);
  char* end = nullptr;
  unsigned long mode = std::strtoul(mode_flag.c_str(), &end, 8);
  if (mode_flag.empty() || *end != '\0' || mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--socket_mode: '", absl::GetFlag(FLAGS_socket_mode), "' is not an octal mode"));
  }
  o.unix_socket_mode = static_cast<mode_t>(mode);
  ASSIGN_OR_RETURN(o.allow_uids, ParseIds(absl::GetFlag(FLAGS_allow_uids), "allow_uids", getpwnam_r,
                                          &passwd::pw_uid));
  ASSIGN_OR_RETURN(o.allow_gids, ParseIds(absl::GetFlag(FLAGS_allow_gids), "allow_gids", getgrnam_r,
                                          &group::gr_gid));
  o.tcp_address = absl::GetFlag(FLAGS_tcp);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  o.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  o.journal_path = absl::GetFlag(FLAGS_journal);
  o.max_connections_per_uid = absl::GetFlag(FLAGS_max_connections_per_uid);
  o.limits.max_image_bytes = absl::GetFlag(FLAGS_max_image_bytes);
  o.limits.max_image_bytes_in_flight = absl::GetFlag(FLAGS_max_image_bytes_in_flight);
  o.limits.image_roots = absl::GetFlag(FLAGS_image_root);
  for (const std::string& root : o.limits.image_roots) {
    if (root.empty() || root[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("--image_root: '", root, "' is not an absolute path"));
    }
  }
  return o;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ucoded: the per-host ucode daemon (gRPC API ucode.v1)");
  absl::ParseCommandLine(argc, argv);
  // Block the stop signals in every thread (threads inherit the mask) and take them with
  // sigwait below: no async-signal-safety puzzles in a handler.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Logs why ucoded cannot start; returns `exit_status`.
  auto failed = [](const absl::Status& s, int exit_status) {
    LogLine("ucoded_failed", {{"error", s.ToString()}});
    return exit_status;
  };
  absl::StatusOr<DaemonOptions> options = OptionsFromFlags();
  if (!options.ok()) return failed(options.status(), 2);
  // Before the runner: a second instance must not touch the first one's VMs or files.
  absl::StatusOr<std::unique_ptr<InstanceLock>> lock = LockJournal(options->journal_path);
  if (!lock.ok()) return failed(lock.status(), 1);
  absl::StatusOr<std::unique_ptr<UpdateRunner>> runner = MakeRunnerFromFlags(options->journal_path);
  if (!runner.ok()) return failed(runner.status(), 2);
  absl::StatusOr<std::unique_ptr<Daemon>> daemon =
      Daemon::Start(*options, runner->get(), *std::move(lock));
  if (!daemon.ok()) return failed(daemon.status(), 1);
  int sig = 0;
  sigwait(&stop, &sig);
  LogLine("ucoded_stopping", {{"signal", strsignal(sig)}});
  (*daemon)->Shutdown(absl::Milliseconds(absl::GetFlag(FLAGS_shutdown_grace_ms)));
  daemon->reset();
  return 0;
}

}  // namespace
}  // namespace ucode::daemon

int main(int argc, char** argv) { return ucode::daemon::Main(argc, argv); }
