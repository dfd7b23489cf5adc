#include "vmm/freeze/fake_vmm.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/time/clock.h"

namespace ucode::freeze {

FakeVmm::FakeVmm(int vcpus) : vcpus_(vcpus) {
  if (vcpus < 1 || vcpus > 64) std::abort();
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  if (mem == MAP_FAILED) std::abort();
  shared_ = new (mem) Shared();
  pid_ = fork();
  if (pid_ < 0) std::abort();
  if (pid_ == 0) {
    std::vector<std::thread> threads;
    for (int i = 0; i < vcpus; ++i) {
      threads.emplace_back([this, i] {
        const std::string name = "CPU " + std::to_string(i) + "/KVM";
        pthread_setname_np(pthread_self(), name.c_str());
        shared_->tid[i].store(static_cast<int32_t>(syscall(SYS_gettid)));
        for (;;) {
          shared_->count[i].fetch_add(1, std::memory_order_relaxed);
          // Sleeping threads freeze like spinning ones; a short sleep keeps the test
          // light on a shared machine.
          usleep(200);
        }
      });
    }
    for (std::thread& t : threads) t.join();
    _exit(0);
  }
  for (int i = 0; i < vcpus; ++i) {
    while (shared_->tid[i].load() == 0) usleep(1000);
  }
}

FakeVmm::~FakeVmm() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  munmap(shared_, sizeof(Shared));
}

uint64_t FakeVmm::count(int vcpu) const { return shared_->count[vcpu].load(); }

std::vector<pid_t> FakeVmm::tids() const {
  std::vector<pid_t> out;
  for (int i = 0; i < vcpus_; ++i) out.push_back(shared_->tid[i].load());
  return out;
}

bool FakeVmm::AllProgress(absl::Duration limit) const {
  std::vector<uint64_t> before;
  for (int i = 0; i < vcpus_; ++i) before.push_back(count(i));
  const absl::Time end = absl::Now() + limit;
  for (;;) {
    bool all = true;
    for (int i = 0; i < vcpus_; ++i) all = all && count(i) > before[i];
    if (all) return true;
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

bool FakeVmm::NoneProgress(absl::Duration window) const {
  std::vector<uint64_t> before;
  for (int i = 0; i < vcpus_; ++i) before.push_back(count(i));
  absl::SleepFor(window);
  for (int i = 0; i < vcpus_; ++i) {
    if (count(i) != before[i]) return false;
  }
  return true;
}

}  // namespace ucode::freeze
