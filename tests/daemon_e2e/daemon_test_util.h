// Helpers for the ucoded end-to-end tests: scratch directories short enough for a Unix
// socket path, subprocesses that are always reaped, test images and certificates.
#ifndef UCODE_TESTS_DAEMON_E2E_DAEMON_TEST_UTIL_H_
#define UCODE_TESTS_DAEMON_E2E_DAEMON_TEST_UTIL_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"
#include "vmm/daemon/api/test_certificates.h"

namespace ucode::daemon_e2e {

using ::ucode::daemon::MakeTestCertificates;

// A directory under /tmp (sun_path holds only 107 bytes; TEST_TMPDIR is often longer),
// mode 0755 so a dropped-privilege subprocess can reach a socket in it. Removed on
// destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process, killed (SIGKILL) and reaped on destruction unless waited for.
class Subprocess {
 public:
  // Runs argv[0] with stdout and stderr appended to `log_path` (empty: inherited).
  Subprocess(const std::vector<std::string>& argv, const std::string& log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  [[nodiscard]] pid_t pid() const { return pid_; }
  // Sends `sig` and reaps; returns the wait status.
  int KillAndWait(int sig);
  // Waits for exit; returns the exit code (or 128 + signal).
  int Wait();

 private:
  pid_t pid_ = -1;
};

// Path of a runfile, e.g. "vmm/daemon/ucoded".
std::string Runfile(const std::string& path);

// A valid synthetic image for the fake runner's host.
std::string TestImage();

// A generated image (`kib` KiB) one revision newer than CPU 0 of `stub`'s host runs now
// ("" when the host does not answer).
std::string NextImage(ucode::v1::UcodeService::Stub& stub, size_t kib = 16);

std::unique_ptr<ucode::v1::UcodeService::Stub> UnixStub(const std::string& socket);

// One DescribeHost call with a 20 s deadline: its status (is this caller served?).
grpc::Status DescribeHost(ucode::v1::UcodeService::Stub& stub);

// Calls DescribeHost on `socket` until it answers (the daemon is up) or `timeout` passes.
bool WaitUntilServing(const std::string& socket, absl::Duration timeout);

// Starts an apply of `image` (on `guests` only, when given); `op` is the operation created.
grpc::Status StartApply(ucode::v1::UcodeService::Stub& stub, const std::string& image,
                        ucode::v1::Operation* op, const std::vector<std::string>& guests = {});

// Every event of `name`'s watch stream; `status` is the stream's end.
std::vector<ucode::v1::OperationEvent> WatchAll(ucode::v1::UcodeService::Stub& stub,
                                                const std::string& name, grpc::Status* status);

// The operation as `name`'s watch stream ended (empty if the stream carried no end).
ucode::v1::Operation WatchToEnd(ucode::v1::UcodeService::Stub& stub, const std::string& name);

// Operation `name` as GetOperation answers; `status` is the call's.
ucode::v1::Operation GetOperation(ucode::v1::UcodeService::Stub& stub, const std::string& name,
                                  grpc::Status* status);

std::string ReadFile(const std::string& path);

}  // namespace ucode::daemon_e2e

#endif  // UCODE_TESTS_DAEMON_E2E_DAEMON_TEST_UTIL_H_
