// A `ucoded --runner=orchestrator` subprocess on the emulated host with a managed ucode-vmm
// fleet (real KVM), and what the orchestrator tests ask of it: an image one revision newer
// than the host runs, an apply, its report.
#ifndef UCODE_TESTS_DAEMON_E2E_UCODED_PROCESS_H_
#define UCODE_TESTS_DAEMON_E2E_UCODED_PROCESS_H_

#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/daemon_e2e/daemon_test_util.h"
#include "tests/vmm_test_util.h"  // SKIP_WITHOUT_KVM

namespace ucode::daemon_e2e {

// One line of the daemon's `<state>/fleet.txt` ("name pid log").
struct FleetEntry {
  std::string name;
  pid_t pid = 0;
  std::string log;
};

inline std::vector<FleetEntry> ReadFleet(const std::string& path) {
  std::vector<FleetEntry> out;
  std::ifstream in(path);
  FleetEntry e;
  while (in >> e.name >> e.pid >> e.log) out.push_back(e);
  return out;
}

class UcodedProcess {
 public:
  // `extra` flags are appended (e.g. --host=activation_fixed_us=600000).
  UcodedProcess(const ScratchDir& dir, const std::string& fleet,
                const std::vector<std::string>& extra = {})
      : socket_(dir.File("ucoded.sock")), log_(dir.File("ucoded.log")) {
    std::vector<std::string> argv = {Runfile("vmm/daemon/ucoded"),
                                     "--runner=orchestrator",
                                     "--platform=emulated",
                                     "--vmm_fleet=" + fleet,
                                     "--socket=" + socket_,
                                     "--journal=" + dir.File("journal.sqlite"),
                                     "--allow_uids=" + std::to_string(getuid())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = std::make_unique<Subprocess>(argv, log_);
    serving_ = WaitUntilServing(socket_, absl::Seconds(60));
    stub_ = UnixStub(socket_);
  }
  [[nodiscard]] bool serving() const { return serving_; }
  [[nodiscard]] const std::string& socket() const { return socket_; }
  [[nodiscard]] std::string log() const { return ReadFile(log_); }
  v1::UcodeService::Stub& stub() { return *stub_; }
  Subprocess& process() { return *process_; }

  // Starts an apply of NextImage(stub(), kib); returns the operation name ("" on failure).
  std::string StartApply(size_t kib = 16) {
    v1::Operation op;
    if (!daemon_e2e::StartApply(*stub_, NextImage(*stub_, kib), &op).ok()) return "";
    return op.name();
  }

  v1::Operation Get(const std::string& name) {
    grpc::Status s;
    v1::Operation op = GetOperation(*stub_, name, &s);
    if (!s.ok()) op.mutable_error()->set_message(s.error_message());
    return op;
  }

 private:
  std::string socket_;
  std::string log_;
  std::unique_ptr<Subprocess> process_;
  std::unique_ptr<v1::UcodeService::Stub> stub_;
  bool serving_ = false;
};

}  // namespace ucode::daemon_e2e

#endif  // UCODE_TESTS_DAEMON_E2E_UCODED_PROCESS_H_
