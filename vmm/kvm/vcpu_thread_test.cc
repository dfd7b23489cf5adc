// In-process tests of one VM's vCPU threads against a private rendezvous area.
#include "vmm/kvm/vcpu_thread.h"

#include <fcntl.h>
#include <unistd.h>

#include <functional>
#include <memory>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "vmm/guest/guest_programs.h"
#include "vmm/guest/guest_record.h"
#include "vmm/kvm/kvm_vm.h"

namespace ucode::vmm {
namespace {

using rendezvous::Command;
using rendezvous::VcpuState;

bool HaveKvm() {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// Polls `done` every millisecond until it holds or 10 s pass; whether it holds.
bool Eventually(const std::function<bool()>& done) {
  const absl::Time end = absl::Now() + absl::Seconds(10);
  while (!done() && absl::Now() < end) absl::SleepFor(absl::Milliseconds(1));
  return done();
}

class VcpuThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveKvm()) GTEST_SKIP() << "/dev/kvm unavailable";
    ASSERT_TRUE(InstallParkSignalHandler().ok());
    area_ = std::make_unique<rendezvous::Area>();
  }

  void Boot(const std::string& program, int vcpus, absl::Duration deadman,
            int stale_view_vcpu = -1) {
    BootCode(guest::FindGuestProgram(program)->code, vcpus, deadman, stale_view_vcpu);
  }

  void BootCode(absl::Span<const uint8_t> code, int vcpus, absl::Duration deadman,
                int stale_view_vcpu = -1) {
    auto vm = KvmVm::Create(4 << 20);
    ASSERT_TRUE(vm.ok()) << vm.status();
    vm_ = std::make_unique<KvmVm>(std::move(*vm));
    ASSERT_TRUE(vm_->LoadProgram(code).ok());
    area_->vm[0].vcpus = vcpus;
    for (int i = 0; i < vcpus; ++i) {
      auto v = vm_->CreateVcpu(i, uint64_t{7} << 32);
      ASSERT_TRUE(v.ok()) << v.status();
      VcpuEnv env;
      env.vm_name = "t";
      env.area = area_.get();
      env.vm = &area_->vm[0];
      env.guest_memory = vm_->memory();
      env.deadman = deadman;
      env.stale_view = i == stale_view_vcpu;
      env.coordinator_gone = &gone_;
      threads_.push_back(std::make_unique<VcpuThread>(std::move(*v), env));
      threads_.back()->Start();
    }
  }

  uint32_t Issue(Command c, uint32_t expected) {
    area_->acks.store(0);
    area_->arrived.store(0);
    area_->expected_acks.store(expected);
    area_->command.store(rendezvous::MakeCommandWord(++seq_, c));
    rendezvous::FutexWakeAll(&area_->command);
    return seq_;
  }

  bool WaitAcks(uint32_t seq, absl::Duration timeout) {
    absl::Time end = absl::Now() + timeout;
    for (;;) {
      bool all = true;
      for (uint32_t i = 0; i < area_->vm[0].vcpus; ++i) {
        all &= area_->vm[0].vcpu[i].ack_seq.load() == seq;
      }
      if (all) return true;
      if (absl::Now() > end) return false;
      rendezvous::FutexWait(&area_->acks, area_->acks.load(), absl::Milliseconds(1));
    }
  }

  uint64_t Record(int vcpu, int offset) const {
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(
                               vm_->memory() + GUEST_RECORD_BASE + vcpu * GUEST_RECORD_SIZE + offset),
                           __ATOMIC_ACQUIRE);
  }
  uint64_t Iterations(int vcpu) const { return Record(vcpu, REC_ITERATIONS); }

  // Parks every vCPU, then releases them with MSR 0x8B = rev << 32 (one command).
  void ParkThenReleaseWithRevision(uint32_t rev) {
    const uint32_t n = area_->vm[0].vcpus;
    uint32_t seq = Issue(Command::kPark, n);
    for (auto& t : threads_) t->Kick();
    ASSERT_TRUE(WaitAcks(seq, absl::Seconds(10)));
    area_->revision.store(uint64_t{rev} << 32);
    ASSERT_TRUE(WaitAcks(Issue(Command::kReleaseWithRevision, n), absl::Seconds(10)));
  }

  // Waits until the guest's own MSR 0x8B read (REC_CUR_REV) on `vcpu` is `msr`.
  bool GuestReads(int vcpu, uint64_t msr) const {
    return Eventually([&] { return Record(vcpu, REC_CUR_REV) == msr; });
  }

  std::unique_ptr<rendezvous::Area> area_;
  std::unique_ptr<KvmVm> vm_;
  std::vector<std::unique_ptr<VcpuThread>> threads_;
  std::atomic<bool> gone_{false};
  uint32_t seq_ = 0;
};

// Many park/release cycles with no pause in between: kicks land at every point of the
// run loop, including just before KVM_RUN; every one must still park the vCPU.
TEST_F(VcpuThreadTest, EveryKickParksWhereverItLands) {
  Boot("exit-storm", 2, absl::Seconds(30));
  for (int i = 0; i < 200; ++i) {
    uint32_t seq = Issue(Command::kPark, 2);
    for (auto& t : threads_) t->Kick();
    ASSERT_TRUE(WaitAcks(seq, absl::Seconds(10))) << "round " << i;
    ASSERT_TRUE(WaitAcks(Issue(Command::kRelease, 2), absl::Seconds(10))) << "round " << i;
  }
}

// The release carries the revision: each vCPU writes and reads back MSR 0x8B before its
// first guest instruction after the park. The guest's first read of the new value comes
// after the iteration it was parked in (iterations, not clocks, order the two).
TEST_F(VcpuThreadTest, ReleaseWithRevisionSetsTheViewBeforeTheGuestRuns) {
  Boot("spin", 2, absl::Seconds(30));
  ASSERT_TRUE(GuestReads(0, uint64_t{7} << 32) && GuestReads(1, uint64_t{7} << 32));
  for (uint32_t rev : {9u, 10u}) {
    ParkThenReleaseWithRevision(rev);
    const uint64_t msr = uint64_t{rev} << 32;
    for (int i = 0; i < 2; ++i) {
      const rendezvous::VcpuSlot& s = area_->vm[0].vcpu[i];
      EXPECT_EQ(s.revision_readback, msr) << "vcpu " << i;
      EXPECT_EQ(s.last_errno, 0) << "vcpu " << i;
      EXPECT_EQ(s.state.load(), static_cast<uint32_t>(VcpuState::kRunning));
      ASSERT_TRUE(GuestReads(i, msr)) << "vcpu " << i;
      EXPECT_EQ(Record(i, REC_BACKWARDS), 0u);
      const uint64_t n = Record(i, REC_NCHANGES);
      ASSERT_GE(n, 1u);
      ASSERT_LE(n, uint64_t{REC_MAX_CHANGES});
      const int last = REC_CHANGES + (n - 1) * REC_CHANGE_SIZE;
      EXPECT_EQ(Record(i, last + 8), msr);
      EXPECT_GE(Record(i, last + 16), s.parked_iteration) << "vcpu " << i;
    }
  }
}

// A write that does not stick fails the read-back on that vCPU only; it is released all
// the same (never left parked), keeps reading the old view, and the slot says so.
TEST_F(VcpuThreadTest, LostViewWriteIsReportedAndTheVcpuStillReleased) {
  Boot("spin", 2, absl::Seconds(30), /*stale_view_vcpu=*/1);
  ParkThenReleaseWithRevision(9);
  const rendezvous::VcpuSlot& good = area_->vm[0].vcpu[0];
  const rendezvous::VcpuSlot& bad = area_->vm[0].vcpu[1];
  EXPECT_EQ(good.last_errno, 0);
  EXPECT_EQ(good.revision_readback, uint64_t{9} << 32);
  EXPECT_EQ(bad.last_errno, -1);
  EXPECT_EQ(bad.revision_readback, uint64_t{7} << 32);
  EXPECT_EQ(bad.state.load(), static_cast<uint32_t>(VcpuState::kRunning));
  const uint64_t released_at = Iterations(1);
  EXPECT_TRUE(Eventually([&] { return Iterations(1) > released_at; }));
  EXPECT_EQ(Record(1, REC_CUR_REV), uint64_t{7} << 32);
}

// At each park the VMM keeps the window's largest gap as the baseline and opens the next
// window; the gap that spans the park goes to REC_PARK_GAP only.
TEST_F(VcpuThreadTest, ParkKeepsTheWindowGapAndLeavesTheParkGapOut) {
  Boot("spin", 1, absl::Seconds(30));
  ParkThenReleaseWithRevision(8);
  // The guest measured the park-spanning gap.
  ASSERT_TRUE(Eventually([&] { return Record(0, REC_PARK_MARK) == 0; }));
  const uint64_t park_gap = Record(0, REC_PARK_GAP);
  EXPECT_GT(park_gap, 0u);
  ParkThenReleaseWithRevision(9);
  // The window the second park closed ran from the first park on: it saw gaps, and not
  // the first park's (which the guest stored apart).
  const uint64_t window = Record(0, REC_WINDOW_GAP_AT_PARK);
  EXPECT_GT(window, 0u);
  EXPECT_NE(window, park_gap);
}

TEST_F(VcpuThreadTest, ParkedVcpuReleasesItselfWhenCoordinatorIsGone) {
  Boot("cli-spin", 1, absl::Seconds(30));
  uint32_t seq = Issue(Command::kPark, 1);
  threads_[0]->Kick();
  ASSERT_TRUE(WaitAcks(seq, absl::Seconds(10)));
  uint64_t parked = Iterations(0);
  gone_.store(true);
  rendezvous::FutexWakeAll(&area_->command);
  EXPECT_TRUE(Eventually([&] { return Iterations(0) > parked; }));
  EXPECT_EQ(area_->vm[0].vcpu[0].deadman_releases.load(), 1u);
}

TEST_F(VcpuThreadTest, GuestFaultStopsTheVcpuWithRegisters) {
  // A guest that writes to an unknown port: the vCPU stops with kExited.
  const uint8_t out_port_0x10[] = {0xb0, 0x01, 0xe6, 0x10, 0xf4};  // mov al,1; out 0x10,al
  BootCode(out_port_0x10, 1, absl::Seconds(2));
  EXPECT_TRUE(Eventually([&] {
    return area_->vm[0].vcpu[0].state.load() == static_cast<uint32_t>(VcpuState::kExited);
  }));
  EXPECT_EQ(area_->vm[0].vcpu[0].exit_reason, uint32_t{KVM_EXIT_IO});
}

}  // namespace
}  // namespace ucode::vmm
