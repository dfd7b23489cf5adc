// ucode-vmm: one small KVM VM per process (see vmm_server.h for the control protocol).
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "vmm/kvm/vmm_server.h"

ABSL_FLAG(int, control_fd, -1, "inherited SOCK_SEQPACKET control socket");
ABSL_FLAG(std::string, name, "vm", "VM name used in logs and thread names");
ABSL_FLAG(std::string, program, "spin", "guest program: spin, cli-spin, halt, exit-storm");
ABSL_FLAG(int, vcpus, 1, "number of vCPUs");
ABSL_FLAG(int, memory_mib, 4, "guest memory in MiB");
ABSL_FLAG(std::string, initial_revision, "0x1",
          "microcode revision the guest sees at start (MSR 0x8B bits 63:32)");
ABSL_FLAG(int, refuse_park_vcpu, -1, "test hook: this vCPU ignores park commands");
ABSL_FLAG(int, stale_view_vcpu, -1, "test hook: this vCPU loses its MSR 0x8B writes");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string name = absl::GetFlag(FLAGS_name);
  // Only vCPU threads take the park signal (they unblock it themselves).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, ucode::vmm::kParkSignal);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  uint32_t rev = 0;
  if (!absl::SimpleHexAtoi(absl::GetFlag(FLAGS_initial_revision), &rev)) {
    std::fprintf(stderr, "[ucode-vmm %s] bad --initial_revision\n", name.c_str());
    return 2;
  }
  ucode::vmm::VmmConfig config;
  config.name = name;
  config.program = absl::GetFlag(FLAGS_program);
  config.vcpus = absl::GetFlag(FLAGS_vcpus);
  config.memory_bytes = size_t(absl::GetFlag(FLAGS_memory_mib)) << 20;
  config.initial_ucode_rev_msr = uint64_t{rev} << 32;
  config.refuse_park_vcpu = absl::GetFlag(FLAGS_refuse_park_vcpu);
  config.stale_view_vcpu = absl::GetFlag(FLAGS_stale_view_vcpu);
  int fd = absl::GetFlag(FLAGS_control_fd);
  if (fd < 0) {
    std::fprintf(stderr, "[ucode-vmm %s] --control_fd is required\n", name.c_str());
    return 2;
  }
  auto server = ucode::vmm::VmmServer::Create(config, ucode::UniqueFd(fd));
  if (!server.ok()) {
    std::fprintf(stderr, "[ucode-vmm %s] %s\n", name.c_str(),
                 server.status().ToString().c_str());
    return 1;
  }
  absl::Status s = (*server)->Serve();
  if (!s.ok()) {
    std::fprintf(stderr, "[ucode-vmm %s] %s\n", name.c_str(), s.ToString().c_str());
    return 1;
  }
  return 0;
}
