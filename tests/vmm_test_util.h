// Helpers shared by the tests that run ucode-vmm fleets: skip without /dev/kvm, VM specs,
// and TestFleet (started, then shut down with the "no ucode-vmm left behind" check).
#ifndef UCODE_TESTS_VMM_TEST_UTIL_H_
#define UCODE_TESTS_VMM_TEST_UTIL_H_

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "host/base/private_files.h"
#include "host/base/read_file.h"
#include "vmm/rendezvous/coordinator.h"

namespace ucode::testing {

// Empty when /dev/kvm can be opened, else the reason to skip.
inline std::string KvmUnavailableReason() {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::StrCat("/dev/kvm unavailable: ", strerror(errno));
  close(fd);
  return "";
}

#define SKIP_WITHOUT_KVM()                                        \
  do {                                                            \
    std::string reason = ::ucode::testing::KvmUnavailableReason(); \
    if (!reason.empty()) GTEST_SKIP() << reason;                  \
  } while (0)

inline std::vector<rendezvous::VmSpec> Fleet(int vms, int vcpus, const std::string& program,
                                             uint32_t initial_revision = 1) {
  std::vector<rendezvous::VmSpec> out;
  for (int i = 0; i < vms; ++i) {
    rendezvous::VmSpec s;
    s.name = absl::StrCat("vm", i);
    s.program = program;
    s.vcpus = vcpus;
    s.initial_revision = initial_revision;
    out.push_back(s);
  }
  return out;
}

// A fresh directory for one fleet's VMM logs (they are created O_EXCL, vmm_process.h).
inline std::string TestLogDir() {
  const char* d = getenv("TEST_TMPDIR");
  absl::StatusOr<std::string> dir = MakePrivateDir(d != nullptr ? d : "", "vmm-logs-");
  return dir.ok() ? *dir : "";
}

// True when no process with this pid exists any more (or it is someone's zombie).
inline bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) < 0 && errno == ESRCH) return true;
  absl::StatusOr<std::string> stat = ReadTextFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return true;
  const size_t rp = stat->rfind(')');
  return rp != std::string::npos && stat->compare(rp, 3, ") Z") == 0;
}

inline bool AllGoneWithin(const std::vector<pid_t>& pids, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  for (;;) {
    bool all = true;
    for (pid_t p : pids) all &= ProcessGone(p);
    if (all) return true;
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

// A started fleet of ucode-vmm processes (logs in a fresh TestLogDir); the destructor shuts
// it down and checks that no process is left.
class TestFleet {
 public:
  explicit TestFleet(const std::vector<rendezvous::VmSpec>& specs,
                     absl::Duration deadman = absl::Seconds(5)) {
    rendezvous::CoordinatorOptions opts;
    opts.deadman = deadman;
    opts.log_dir = TestLogDir();
    auto c = rendezvous::Coordinator::Start(specs, opts);
    EXPECT_TRUE(c.ok()) << c.status();
    if (c.ok()) coordinator_ = *std::move(c);
  }
  ~TestFleet() {
    if (!coordinator_) return;
    std::vector<pid_t> pids = coordinator_->pids();
    EXPECT_TRUE(coordinator_->Shutdown().ok());
    coordinator_.reset();
    EXPECT_TRUE(AllGoneWithin(pids, absl::Seconds(5)));
  }
  TestFleet(const TestFleet&) = delete;
  TestFleet& operator=(const TestFleet&) = delete;

  [[nodiscard]] bool ok() const { return coordinator_ != nullptr; }
  rendezvous::Coordinator& operator*() { return *coordinator_; }
  rendezvous::Coordinator* operator->() { return coordinator_.get(); }

  // vCPUs of the fleet in `state`.
  int Count(rendezvous::VcpuState state) const {
    int n = 0;
    for (const auto& vm : coordinator_->area().vm) {
      for (uint32_t j = 0; j < vm.vcpus; ++j) {
        n += vm.vcpu[j].state.load() == static_cast<uint32_t>(state);
      }
    }
    return n;
  }

  // Waits until every vCPU (of a program that loops) ran at least one more iteration than
  // at the call. Guests are slow and share 2 cores, hence the patience.
  ::testing::AssertionResult AllMakeProgress(absl::Duration timeout) {
    auto before = coordinator_->ReadGuestViews();
    if (!before.ok()) return ::testing::AssertionFailure() << before.status();
    const absl::Time end = absl::Now() + timeout;
    for (;;) {
      auto now = coordinator_->ReadGuestViews();
      if (!now.ok()) return ::testing::AssertionFailure() << now.status();
      std::string stuck;
      for (size_t i = 0; i < now->size(); ++i) {
        for (size_t j = 0; j < (*now)[i].vcpus.size(); ++j) {
          if ((*now)[i].vcpus[j].iterations <= (*before)[i].vcpus[j].iterations) {
            absl::StrAppend(&stuck, " ", (*now)[i].name, " vcpu ", j);
          }
        }
      }
      if (stuck.empty()) return ::testing::AssertionSuccess();
      if (absl::Now() > end) return ::testing::AssertionFailure() << "no progress:" << stuck;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

 private:
  std::unique_ptr<rendezvous::Coordinator> coordinator_;
};

}  // namespace ucode::testing

#endif  // UCODE_TESTS_VMM_TEST_UTIL_H_
