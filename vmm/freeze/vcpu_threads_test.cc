#include "vmm/freeze/vcpu_threads.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ucode::freeze {
namespace {

using ::testing::HasSubstr;

// A fake /proc: PID/cmdline and PID/task/TID/{comm,cgroup}.
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/fake-proc-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  ~FakeProc() { std::system(("rm -rf " + root_).c_str()); }
  void Process(int pid, const std::string& cmdline) {
    mkdir((root_ + "/" + std::to_string(pid)).c_str(), 0700);
    mkdir((root_ + "/" + std::to_string(pid) + "/task").c_str(), 0700);
    Write(std::to_string(pid) + "/cmdline", cmdline);
  }
  void Thread(int pid, int tid, const std::string& comm) {
    const std::string dir = std::to_string(pid) + "/task/" + std::to_string(tid);
    mkdir((root_ + "/" + dir).c_str(), 0700);
    Write(dir + "/comm", comm + "\n");
    Write(dir + "/cgroup", "0::/\n");
  }
  const std::string& root() const { return root_; }

 private:
  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ + "/" + rel, std::ios::binary) << text;
  }
  std::string root_;
};

TEST(VcpuIndexFromCommTest, ReadsQemuNames) {
  EXPECT_EQ(VcpuIndexFromComm("CPU 0/KVM\n"), 0);
  EXPECT_EQ(VcpuIndexFromComm("CPU 13/TCG"), 13);
  EXPECT_EQ(VcpuIndexFromComm("CPU x/KVM"), std::nullopt);
  EXPECT_EQ(VcpuIndexFromComm("CPU 1/"), std::nullopt);
  EXPECT_EQ(VcpuIndexFromComm("qemu-system-x86"), std::nullopt);
  EXPECT_EQ(VcpuIndexFromComm("CPU -1/KVM"), std::nullopt);
}

TEST(ReadVcpuThreadsTest, FindsVcpusMainThreadFirst) {
  FakeProc proc;
  proc.Process(50, std::string("qemu-system-x86_64\0-uuid\0abc\0", 30));
  proc.Thread(50, 52, "CPU 1/TCG");
  proc.Thread(50, 50, "qemu-system-x86");
  proc.Thread(50, 51, "CPU 0/TCG");
  absl::StatusOr<std::vector<ThreadInput>> t = ReadVcpuThreads(proc.root(), 50, 2);
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[0].tid, 50);
  EXPECT_EQ((*t)[0].vcpu, -1);
  EXPECT_EQ((*t)[1].vcpu, 0);
  EXPECT_EQ((*t)[2].vcpu, 1);
  EXPECT_EQ((*t)[2].cgroup_file, "0::/\n");
}

TEST(ReadVcpuThreadsTest, CountMismatchNamesWhatWasFound) {
  FakeProc proc;
  proc.Process(60, "qemu");
  proc.Thread(60, 60, "qemu-system-x86");
  proc.Thread(60, 61, "CPU 0/TCG");
  absl::StatusOr<std::vector<ThreadInput>> t = ReadVcpuThreads(proc.root(), 60, 2);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(t.status().message(), HasSubstr("expected 2 vCPU threads"));
  EXPECT_THAT(t.status().message(), HasSubstr("found 1 (61=CPU 0/TCG)"));
  // Unnamed threads (no debug-threads): none found.
  FakeProc plain;
  plain.Process(70, "qemu");
  plain.Thread(70, 70, "qemu-system-x86");
  plain.Thread(70, 71, "qemu-system-x86");
  EXPECT_THAT(ReadVcpuThreads(plain.root(), 70, 1).status().message(), HasSubstr("found 0"));
  // Two threads claiming vCPU 0.
  FakeProc dup;
  dup.Process(80, "qemu");
  dup.Thread(80, 80, "main");
  dup.Thread(80, 81, "CPU 0/KVM");
  dup.Thread(80, 82, "CPU 0/KVM");
  EXPECT_FALSE(ReadVcpuThreads(dup.root(), 80, 2).ok());
}

TEST(FindQemuByUuidTest, MatchesOnlyQemuWithThatUuid) {
  FakeProc proc;
  proc.Process(10, std::string("/usr/bin/qemu-system-x86_64\0-name\0guest=a\0-uuid\0AAAA-1\0", 55));
  proc.Process(11, std::string("/bin/sh\0-uuid\0aaaa-2\0", 22));
  proc.Process(12, std::string("qemu-system-x86_64\0-uuid\0aaaa-2\0", 33));
  EXPECT_EQ(FindQemuByUuid(proc.root(), "aaaa-1").value(), 10);
  EXPECT_EQ(FindQemuByUuid(proc.root(), "aaaa-2").value(), 12);
  EXPECT_EQ(FindQemuByUuid(proc.root(), "bbbb").status().code(), absl::StatusCode::kNotFound);
  proc.Process(13, std::string("qemu-kvm\0-uuid\0aaaa-2\0", 23));
  EXPECT_EQ(FindQemuByUuid(proc.root(), "aaaa-2").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ucode::freeze
