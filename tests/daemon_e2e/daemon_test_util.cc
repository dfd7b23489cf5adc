#include "tests/daemon_e2e/daemon_test_util.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/time/clock.h"
#include "host/base/read_file.h"
#include "host/microcode/image_generator.h"

namespace ucode::daemon_e2e {

ScratchDir::ScratchDir() {
  char tmpl[] = "/tmp/ucoded-e2e-XXXXXX";
  char* p = mkdtemp(tmpl);
  if (p != nullptr) {
    path_ = p;
    chmod(p, 0755);
  }
}

ScratchDir::~ScratchDir() {
  if (!path_.empty()) {
    std::string cmd = "rm -rf '" + path_ + "'";
    [[maybe_unused]] int rc = system(cmd.c_str());
  }
}

Subprocess::Subprocess(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = -1;
  if (!log_path.empty()) log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  pid_ = fork();
  if (pid_ == 0) {
    // Only async-signal-safe calls between fork and exec: the parent has gRPC threads.
    if (log_fd >= 0) {
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
}

Subprocess::~Subprocess() {
  if (pid_ > 0) KillAndWait(SIGKILL);
}

int Subprocess::KillAndWait(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

int Subprocess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return std::string(srcdir != nullptr ? srcdir : ".") + "/ucode/" + path;
}

std::string TestImage() {
  auto img = microcode::GenerateImage(microcode::GeneratorOptions{});
  return img.ok() ? std::string(img->begin(), img->end()) : "";
}

grpc::Status DescribeHost(ucode::v1::UcodeService::Stub& stub) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ucode::v1::Host host;
  return stub.DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host);
}

std::string NextImage(ucode::v1::UcodeService::Stub& stub, size_t kib) {
  grpc::ClientContext ctx;
  ucode::v1::Host host;
  if (!stub.DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host).ok() ||
      host.cpus().empty()) {
    return "";
  }
  microcode::GeneratorOptions g;
  g.signature = host.signature();
  g.platform_flags = 1u << host.platform_id();
  g.revision = host.cpus(0).revision() + 1;
  g.min_req_revision = host.cpus(0).revision();
  g.data_size = kib * 1024 - microcode::kHeaderSize;
  auto img = microcode::GenerateImage(g);
  return img.ok() ? std::string(img->begin(), img->end()) : "";
}

std::unique_ptr<ucode::v1::UcodeService::Stub> UnixStub(const std::string& socket) {
  return ucode::v1::UcodeService::NewStub(
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
}

bool WaitUntilServing(const std::string& socket, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    // A fresh channel per try: a channel that failed to connect backs off for seconds.
    struct stat st;
    if (stat(socket.c_str(), &st) == 0) {
      auto stub = UnixStub(socket);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      ucode::v1::Host host;
      if (stub->DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host).ok()) return true;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

grpc::Status StartApply(ucode::v1::UcodeService::Stub& stub, const std::string& image,
                        ucode::v1::Operation* op, const std::vector<std::string>& guests) {
  ucode::v1::ApplyUpdateRequest req;
  req.mutable_image()->set_image_bytes(image);
  for (const std::string& g : guests) req.add_guests(g);
  grpc::ClientContext ctx;
  return stub.ApplyUpdate(&ctx, req, op);
}

std::vector<ucode::v1::OperationEvent> WatchAll(ucode::v1::UcodeService::Stub& stub,
                                                const std::string& name, grpc::Status* status) {
  grpc::ClientContext ctx;
  ucode::v1::WatchOperationRequest req;
  req.set_name(name);
  auto reader = stub.WatchOperation(&ctx, req);
  std::vector<ucode::v1::OperationEvent> events;
  ucode::v1::OperationEvent e;
  while (reader->Read(&e)) events.push_back(e);
  *status = reader->Finish();
  return events;
}

ucode::v1::Operation WatchToEnd(ucode::v1::UcodeService::Stub& stub, const std::string& name) {
  grpc::Status st;
  std::vector<ucode::v1::OperationEvent> events = WatchAll(stub, name, &st);
  return events.empty() ? ucode::v1::Operation() : events.back().final_state();
}

ucode::v1::Operation GetOperation(ucode::v1::UcodeService::Stub& stub, const std::string& name,
                                  grpc::Status* status) {
  grpc::ClientContext ctx;
  ucode::v1::GetOperationRequest req;
  req.set_name(name);
  ucode::v1::Operation op;
  *status = stub.GetOperation(&ctx, req, &op);
  return op;
}

std::string ReadFile(const std::string& path) { return ReadTextFile(path).value_or(""); }

}  // namespace ucode::daemon_e2e
