#include "vmm/freeze/cgroup_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ucode::freeze {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Debian/Ubuntu with systemd: cgroup2 only, at /sys/fs/cgroup.
constexpr char kSystemdV2[] =
    "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "25 21 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// These development machines: v1 controllers, cgroup2 at /sys/fs/cgroup/unified.
constexpr char kHybrid[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// An old host: v1 only, freezer co-mounted with cpuacct.
constexpr char kV1Only[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct,freezer rw,relatime - cgroup cgroup "
    "rw,cpuacct,freezer\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";

// v1 without the freezer controller, and no cgroup2.
constexpr char kNoFreezer[] =
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";

ThreadInput Thread(pid_t tid, int vcpu, std::string file) {
  return {.tid = tid, .vcpu = vcpu, .cgroup_file = std::move(file)};
}

// A plan of one unit of ours: the threads `tids` moved from `origin` into `dir`.
void ExpectOneUnit(const absl::StatusOr<FreezePlan>& p, Mechanism mechanism,
                   const std::string& dir, const std::string& origin, std::vector<pid_t> tids) {
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->units.size(), 1u);
  EXPECT_EQ(p->units[0].mechanism, mechanism);
  EXPECT_EQ(p->units[0].dir, dir);
  EXPECT_EQ(p->units[0].origin, origin);
  EXPECT_EQ(p->units[0].tids, tids);
}

TEST(ParseMountinfoTest, FindsEachHierarchy) {
  EXPECT_EQ(ParseMountinfo(kSystemdV2).v2, "/sys/fs/cgroup");
  EXPECT_EQ(ParseMountinfo(kSystemdV2).v1_freezer, "");
  EXPECT_EQ(ParseMountinfo(kHybrid).v2, "/sys/fs/cgroup/unified");
  EXPECT_EQ(ParseMountinfo(kHybrid).v1_freezer, "/sys/fs/cgroup/freezer");
  EXPECT_EQ(ParseMountinfo(kV1Only).v1_freezer, "/sys/fs/cgroup/cpuacct,freezer");
  EXPECT_EQ(ParseMountinfo(kNoFreezer).v1_freezer, "");
}

TEST(ParseMountinfoTest, IgnoresSubtreeMountsAndDecodesEscapes) {
  EXPECT_EQ(ParseMountinfo("41 31 0:38 /machine /mnt/cg rw - cgroup2 cgroup2 rw\n").v2, "");
  EXPECT_EQ(ParseMountinfo("41 31 0:38 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n").v2,
            "/mnt/my cg");
  EXPECT_EQ(ParseMountinfo("41 31 0:38 / /mnt/bad\\09 rw - cgroup2 cgroup2 rw\n").v2, "");
  EXPECT_EQ(ParseMountinfo("garbage\n- -\n").v2, "");
}

TEST(ParseCgroupFileTest, ReadsV2AndFreezerLines) {
  ThreadCgroups c = ParseCgroupFile("9:name=systemd:/\n6:cpuacct,freezer:/machine/x\n0::/a/b\n");
  EXPECT_EQ(c.v2, "/a/b");
  EXPECT_EQ(c.v1_freezer, "/machine/x");
  EXPECT_EQ(ParseCgroupFile("0::/a/../b\n").v2, "");
  EXPECT_EQ(ParseCgroupFile("0::relative\n").v2, "");
}

TEST(PlanFreezeTest, SystemdV2FreezesLibvirtVcpuCgroupsInPlace) {
  const std::string scope = "/machine.slice/machine-qemu\\x2d1\\x2dweb1.scope/libvirt";
  std::vector<ThreadInput> t = {Thread(100, -1, "0::" + scope + "/emulator\n"),
                                Thread(101, 0, "0::" + scope + "/vcpu0\n"),
                                Thread(102, 1, "0::" + scope + "/vcpu1\n"),
                                Thread(103, -1, "0::" + scope + "/emulator\n")};
  absl::StatusOr<FreezePlan> p = PlanFreeze(kSystemdV2, t, "ucode-freeze-1");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->units.size(), 2u);
  EXPECT_EQ(p->units[0].mechanism, Mechanism::kV2InPlace);
  EXPECT_EQ(p->units[0].dir, "/sys/fs/cgroup" + scope + "/vcpu0");
  EXPECT_THAT(p->units[0].tids, ElementsAre(101));
  EXPECT_EQ(p->units[1].dir, "/sys/fs/cgroup" + scope + "/vcpu1");
  EXPECT_THAT(p->units[1].vcpus, ElementsAre(1));
}

TEST(PlanFreezeTest, SystemdV2WithoutVcpuCgroupsUsesOwnThreadedCgroup) {
  std::vector<ThreadInput> t = {Thread(100, -1, "0::/system.slice/qemu-web.service\n"),
                                Thread(101, 0, "0::/system.slice/qemu-web.service\n"),
                                Thread(102, 1, "0::/system.slice/qemu-web.service\n")};
  ExpectOneUnit(PlanFreeze(kSystemdV2, t, "ucode-freeze-1"), Mechanism::kV2Own,
                "/sys/fs/cgroup/system.slice/qemu-web.service/ucode-freeze-1",
                "/sys/fs/cgroup/system.slice/qemu-web.service", {101, 102});
}

TEST(PlanFreezeTest, VcpuCgroupSharedWithAnotherThreadIsNotFrozenInPlace) {
  // vcpu0's cgroup also holds an I/O thread: freezing it in place would freeze that too.
  std::vector<ThreadInput> t = {Thread(100, -1, "0::/q\n"), Thread(101, 0, "0::/q/vcpu0\n"),
                                Thread(102, -1, "0::/q/vcpu0\n")};
  absl::StatusOr<FreezePlan> p = PlanFreeze(kSystemdV2, t, "own");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(p.status().message(), HasSubstr("vcpu0 (tid 101)"));
  EXPECT_THAT(p.status().message(), HasSubstr("no cgroup-v1 freezer mounted"));
}

TEST(PlanFreezeTest, HybridLibvirtLayoutFreezesInPlace) {
  const std::string m = "/machine/qemu-4-web1.libvirt-qemu";
  auto file = [&](const std::string& leaf) {
    return "9:name=systemd:/\n6:freezer:" + m + "\n1:cpu:" + m + "/" + leaf + "\n0::" + m +
           "/" + leaf + "\n";
  };
  std::vector<ThreadInput> t = {Thread(200, -1, file("emulator")), Thread(201, 0, file("vcpu0")),
                                Thread(202, 1, file("vcpu1"))};
  absl::StatusOr<FreezePlan> p = PlanFreeze(kHybrid, t, "own");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->units.size(), 2u);
  EXPECT_EQ(p->units[1].dir, "/sys/fs/cgroup/unified" + m + "/vcpu1");
  EXPECT_EQ(p->Describe(),
            "vcpu0: cgroup2-in-place /sys/fs/cgroup/unified" + m +
                "/vcpu0; vcpu1: cgroup2-in-place /sys/fs/cgroup/unified" + m + "/vcpu1");
}

TEST(PlanFreezeTest, HybridPlainQemuUsesOwnThreadedCgroupUnderRoot) {
  std::vector<ThreadInput> t = {Thread(300, -1, "6:freezer:/\n0::/\n"),
                                Thread(301, 0, "6:freezer:/\n0::/\n")};
  ExpectOneUnit(PlanFreeze(kHybrid, t, "ucode-freeze-7"), Mechanism::kV2Own,
                "/sys/fs/cgroup/unified/ucode-freeze-7", "/sys/fs/cgroup/unified", {301});
}

TEST(PlanFreezeTest, HybridWithThreadsSplitBySomeoneElseUsesV1Freezer) {
  // The vCPU threads share a threaded cgroup that is not the process's: moving them
  // would undo someone's placement, so the v1 freezer holds them.
  std::vector<ThreadInput> t = {Thread(300, -1, "6:freezer:/m\n0::/m\n"),
                                Thread(301, 0, "6:freezer:/m\n0::/m/vcpus\n"),
                                Thread(302, 1, "6:freezer:/m\n0::/m/vcpus\n")};
  ExpectOneUnit(PlanFreeze(kHybrid, t, "own"), Mechanism::kV1Own, "/sys/fs/cgroup/freezer/m/own",
                "/sys/fs/cgroup/freezer/m", {301, 302});
}

TEST(PlanFreezeTest, V1OnlyUsesFreezerHierarchy) {
  const std::string file = "3:cpuset:/machine/vm1/vcpu0\n2:cpuacct,freezer:/machine/vm1\n";
  std::vector<ThreadInput> t = {Thread(400, -1, file), Thread(401, 0, file)};
  ExpectOneUnit(PlanFreeze(kV1Only, t, "own"), Mechanism::kV1Own,
                "/sys/fs/cgroup/cpuacct,freezer/machine/vm1/own",
                "/sys/fs/cgroup/cpuacct,freezer/machine/vm1", {401});
}

TEST(PlanFreezeTest, NoFreezerNamesTheReason) {
  const std::string file = "3:cpuset:/\n1:cpu:/\n";
  std::vector<ThreadInput> t = {Thread(500, -1, file), Thread(501, 0, file)};
  absl::StatusOr<FreezePlan> p = PlanFreeze(kNoFreezer, t, "own");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(p.status().message(), HasSubstr("no cgroup2 mounted"));
  EXPECT_THAT(p.status().message(), HasSubstr("no cgroup-v1 freezer mounted"));
}

TEST(PlanFreezeTest, RejectsBadOwnNameAndNoVcpus) {
  std::vector<ThreadInput> t = {Thread(1, -1, "0::/\n")};
  EXPECT_EQ(PlanFreeze(kHybrid, t, "../x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanFreeze(kHybrid, t, "ok").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ucode::freeze
