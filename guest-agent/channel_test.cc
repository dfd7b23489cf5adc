#include "guest-agent/channel.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace ucode_agent {
namespace {

class FakeSysfs {
 public:
  FakeSysfs() : root_(std::filesystem::path(std::getenv("TEST_TMPDIR")) / "sysroot") {
    std::filesystem::remove_all(root_);
  }
  void AddPort(const std::string& port, const std::string& name) {
    auto dir = root_ / "sys/class/virtio-ports" / port;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "name") << name << "\n";
  }
  std::string root() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

TEST(ChannelTest, FindsThePortByName) {
  FakeSysfs sysfs;
  sysfs.AddPort("vport0p1", "org.qemu.guest_agent.0");
  sysfs.AddPort("vport1p1", "org.ucode.agent.0");
  ChannelOptions o;
  o.sysfs_root = sysfs.root();
  std::string error;
  EXPECT_EQ(FindVirtioPort(o, &error).value_or(""), "/dev/vport0p1");
  o.port_name = "org.ucode.agent.0";
  o.dev_dir = "/tmp/dev";
  EXPECT_EQ(FindVirtioPort(o, &error).value_or(""), "/tmp/dev/vport1p1");
}

TEST(ChannelTest, ExplainsAMissingPort) {
  FakeSysfs sysfs;
  sysfs.AddPort("vport0p1", "com.redhat.spice.0");
  ChannelOptions o;
  o.sysfs_root = sysfs.root();
  std::string error;
  EXPECT_FALSE(FindVirtioPort(o, &error));
  EXPECT_NE(error.find("no virtio port named 'org.qemu.guest_agent.0'"), std::string::npos);
  o.sysfs_root = sysfs.root() + "/nothing";
  EXPECT_FALSE(FindVirtioPort(o, &error));
  EXPECT_NE(error.find("virtio_console"), std::string::npos);
}

TEST(ChannelTest, InheritedFdBecomesCloseOnExecAndNonBlocking) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ChannelOptions o;
  o.inherited_fd = sv[0];
  ChannelKind kind;
  std::string error;
  ucode::UniqueFd fd = OpenChannel(o, &kind, &error);
  ASSERT_TRUE(fd.valid()) << error;
  EXPECT_EQ(kind, ChannelKind::kInheritedFd);
  EXPECT_TRUE(fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(fcntl(fd.get(), F_GETFL) & O_NONBLOCK);
  close(sv[1]);
}

}  // namespace
}  // namespace ucode_agent
