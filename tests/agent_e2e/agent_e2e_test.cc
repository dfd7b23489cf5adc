// The real ucode-agent binary, driven over a socketpair and a Unix socket as
// libvirt would drive it over the virtio-serial chardev.
#include <elf.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "host/base/read_file.h"
#include "tests/agent_e2e/agent_process.h"

namespace ucode_agent_e2e {
namespace {

namespace fs = std::filesystem;

// Short paths under /tmp: a Unix socket path must fit in 108 bytes.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/agent-e2e.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  void Write(const std::string& rel, const std::string& content, fs::perms mode) const {
    fs::path p = fs::path(path_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    fs::permissions(p, mode);
  }

 private:
  std::string path_;
};

constexpr fs::perms kExec = fs::perms::owner_all | fs::perms::group_read |
                            fs::perms::group_exec | fs::perms::others_read |
                            fs::perms::others_exec;

std::vector<std::string> DirArgs(const ScratchDir& dir) {
  return {"--prepare-dir", dir.path() + "/prepare.d", "--complete-dir",
          dir.path() + "/complete.d", "--state-dir", dir.path() + "/state",
          "--cpuinfo", dir.path() + "/cpuinfo"};
}

class SocketpairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    host_ = sv[0];
    std::vector<std::string> args = {"--fd", "3"};
    for (const std::string& a : DirArgs(dir_)) args.push_back(a);
    agent_ = std::make_unique<AgentProcess>(args, sv[1]);
    close(sv[1]);
    ASSERT_GT(agent_->pid(), 0);
  }
  void TearDown() override {
    if (host_ >= 0) close(host_);
  }

  std::string Call(const std::string& line) {
    EXPECT_TRUE(WriteAll(host_, line + "\n"));
    return ReadLine(host_, &buffer_).value_or("<no reply>");
  }

  ScratchDir dir_;
  int host_ = -1;
  std::string buffer_;
  std::unique_ptr<AgentProcess> agent_;
};

TEST_F(SocketpairTest, SyncDelimitedAfterStaleInput) {
  // A previous client left half a command; the host flushes with 0xFF and
  // issues guest-sync-delimited, then discards everything up to the sentinel.
  ASSERT_TRUE(WriteAll(host_, "{\"execute\":\"guest-in"));
  ASSERT_TRUE(WriteAll(host_, "\xff{\"execute\":\"guest-sync-delimited\","
                              "\"arguments\":{\"id\":1730000000123}}\n"));
  std::optional<std::string> line = ReadLine(host_, &buffer_);
  ASSERT_TRUE(line);
  ASSERT_FALSE(line->empty());
  EXPECT_EQ(static_cast<unsigned char>((*line)[0]), 0xFF);
  EXPECT_EQ(line->substr(1), "{\"return\":1730000000123}");
  // libvirt's plain guest-sync.
  EXPECT_EQ(Call("{\"execute\":\"guest-sync\", \"arguments\":{\"id\":5}}"), "{\"return\":5}");
}

// 10,000 requests written back to back while the host reads the replies at its own pace,
// over a channel with a small queue (as a virtio-serial port has): the agent used to give
// up on a reply after 50 waits for room (808 of 10k dropped); now it stops reading requests
// until the host has read (backpressure) and delivers every reply, in order.
TEST(PipelineTest, EveryReplyOfTenThousandPipelinedRequestsArrives) {
  constexpr int kRequests = 10000;
  ScratchDir dir;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  const int host = sv[0];
  const int small = 4096;  // the kernel doubles it; still a few replies at a time
  ASSERT_EQ(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  std::vector<std::string> args = {"--fd", "3"};
  for (const std::string& a : DirArgs(dir)) args.push_back(a);
  AgentProcess agent(args, sv[1]);
  close(sv[1]);
  ASSERT_GT(agent.pid(), 0);
  std::thread writer([host] {
    std::string batch;
    for (int i = 0; i < kRequests; ++i) {
      // guest-info: about 1 KiB per reply, many replies per read of requests.
      batch += "{\"execute\":\"guest-info\",\"id\":" + std::to_string(i) + "}\n";
      if (batch.size() > 60000) {
        EXPECT_TRUE(WriteAll(host, batch));
        batch.clear();
      }
    }
    EXPECT_TRUE(WriteAll(host, batch));
  });
  int received = 0;
  std::string buffer;
  while (received < kRequests) {
    std::optional<std::string> line = ReadLine(host, &buffer);  // 20 s hang guard
    if (!line) break;
    const std::string id = ",\"id\":" + std::to_string(received) + "}";
    ASSERT_GE(line->size(), id.size());
    ASSERT_EQ(line->substr(line->size() - id.size()), id) << *line;
    ++received;
  }
  writer.join();
  close(host);
  EXPECT_EQ(received, kRequests);
}

TEST_F(SocketpairTest, EveryCommand) {
  EXPECT_EQ(Call("{\"execute\":\"guest-ping\"}"), "{\"return\":{}}");
  std::string info = Call("{\"execute\":\"guest-info\"}");
  for (const char* name : {"guest-sync", "guest-sync-delimited", "guest-ping", "guest-info",
                           "guest-ucode-prepare", "guest-ucode-complete", "guest-ucode-status"}) {
    EXPECT_NE(info.find(std::string("{\"name\":\"") + name +
                        "\",\"enabled\":true,\"success-response\":true}"),
              std::string::npos)
        << name << " missing in " << info;
  }

  dir_.Write("prepare.d/10-ok", "#!/bin/sh\necho prepared\n", kExec);
  std::string prepare =
      Call("{\"execute\":\"guest-ucode-prepare\",\"arguments\":{\"deadline-ms\":5000}}");
  EXPECT_NE(prepare.find("\"status\":\"ready\""), std::string::npos) << prepare;

  dir_.Write("complete.d/10-mark", "#!/bin/sh\necho \"$UCODE_NEW_REVISION\" > \"$UCODE_STATE_DIR/mark\"\n",
             kExec);
  std::string complete = Call(
      "{\"execute\":\"guest-ucode-complete\",\"arguments\":{\"old-revision\":721421880,"
      "\"new-revision\":721421881,\"host\":\"hv-1\",\"mode\":\"late-load\"},\"id\":\"c1\"}");
  EXPECT_NE(complete.find("\"status\":\"recorded\""), std::string::npos) << complete;
  EXPECT_NE(complete.find("\"id\":\"c1\""), std::string::npos) << complete;
  EXPECT_EQ(ucode::ReadTextFile(dir_.path() + "/state/mark").value_or(""), "0x2b000639\n");

  dir_.Write("cpuinfo", "processor\t: 0\nmicrocode\t: 0x2b000639\n", fs::perms::owner_read);
  std::string status = Call("{\"execute\":\"guest-ucode-status\"}");
  EXPECT_NE(status.find("\"new-revision\":721421881"), std::string::npos) << status;
  EXPECT_NE(status.find("\"microcode-revision\":721421881"), std::string::npos) << status;
  EXPECT_NE(status.find("\"last-prepare\":{"), std::string::npos) << status;

  EXPECT_EQ(Call("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\"}}"),
            "{\"error\":{\"class\":\"CommandNotFound\","
            "\"desc\":\"The command guest-exec has not been found\"}}");
  EXPECT_EQ(agent_->Terminate(), 0);
}

TEST_F(SocketpairTest, HostileInputNeverHurtsIt) {
  // Malformed JSON, binary junk, a 1 MiB line, deep nesting: each answered or
  // dropped, and the agent keeps serving.
  EXPECT_NE(Call("{\"execute\":").find("\"class\":\"GenericError\""), std::string::npos);
  EXPECT_NE(Call(std::string("\x01\x02\x80\xfe", 4)).find("GenericError"), std::string::npos);
  EXPECT_NE(Call(std::string(1 << 20, '[')).find("longer than 65536"), std::string::npos);
  EXPECT_NE(Call(std::string(60000, '[')).find("nesting too deep"), std::string::npos);
  // A shell command in an argument is just an unexpected argument.
  EXPECT_NE(Call("{\"execute\":\"guest-ucode-prepare\",\"arguments\":{\"deadline-ms\":1,"
                 "\"hook\":\"$(touch " + dir_.path() + "/pwned)\"}}")
                .find("Parameter 'hook' is unexpected"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir_.path() + "/pwned"));
  EXPECT_EQ(Call("{\"execute\":\"guest-ping\"}"), "{\"return\":{}}");
}

TEST_F(SocketpairTest, ExitsWhenTheInheritedChannelCloses) {
  close(host_);
  host_ = -1;
  int status = 0;
  ASSERT_EQ(waitpid(agent_->pid(), &status, 0), agent_->pid());
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A listening Unix socket standing in for the host side of the port.
int Listen(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

TEST(UnixSocketTest, FindsPortByNameAndReconnectsAfterHostDisconnect) {
  ScratchDir dir;
  // Fake sysfs: the port named org.ucode.test.0 is vport3p2, whose "device
  // node" in --dev-dir is our listening socket.
  dir.Write("sys/class/virtio-ports/vport0p1/name", "org.qemu.guest_agent.0\n",
            fs::perms::owner_read);
  dir.Write("sys/class/virtio-ports/vport3p2/name", "org.ucode.test.0\n", fs::perms::owner_read);
  fs::create_directories(dir.path() + "/dev");
  int listener = Listen(dir.path() + "/dev/vport3p2");
  ASSERT_GE(listener, 0);
  std::vector<std::string> args = {"--port-name", "org.ucode.test.0", "--sysfs-root", dir.path(),
                                   "--dev-dir", dir.path() + "/dev"};
  for (const std::string& a : DirArgs(dir)) args.push_back(a);
  AgentProcess agent(args, -1);
  ASSERT_GT(agent.pid(), 0);

  for (int round = 0; round < 3; ++round) {
    int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(conn, 0);
    std::string buffer;
    // A partial command left by the previous connection must not leak into this one.
    ASSERT_TRUE(WriteAll(conn, "{\"execute\":\"guest-sync\",\"arguments\":{\"id\":" +
                                   std::to_string(round) + "}}\n{\"execute\""));
    EXPECT_EQ(ReadLine(conn, &buffer).value_or(""), "{\"return\":" + std::to_string(round) + "}");
    close(conn);  // the host goes away; the agent reconnects
  }
  int conn = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(conn, 0);
  std::string buffer;
  ASSERT_TRUE(WriteAll(conn, "{\"execute\":\"guest-ping\"}\n"));
  EXPECT_EQ(ReadLine(conn, &buffer).value_or(""), "{\"return\":{}}");
  EXPECT_EQ(agent.Terminate(), 0);
  close(conn);
  close(listener);
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitizerBuild = true;  // ASan cannot link statically
#else
constexpr bool kSanitizerBuild = false;
#endif

TEST(BinaryTest, IsStaticallyLinked) {
  if (kSanitizerBuild) GTEST_SKIP() << "sanitizer builds link dynamically";
  const std::string elf = ucode::ReadTextFile(AgentBinary()).value_or("");
  ASSERT_GE(elf.size(), sizeof(Elf64_Ehdr));
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof(eh));
  ASSERT_EQ(std::memcmp(eh.e_ident, ELFMAG, SELFMAG), 0);
  bool has_interp = false;
  bool has_dynamic_needed = false;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    ASSERT_LE(eh.e_phoff + (i + 1) * sizeof(ph), elf.size());
    std::memcpy(&ph, elf.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    has_interp |= ph.p_type == PT_INTERP;
    has_dynamic_needed |= ph.p_type == PT_DYNAMIC;
  }
  EXPECT_FALSE(has_interp) << "ucode-agent needs a dynamic loader";
  EXPECT_FALSE(has_dynamic_needed) << "ucode-agent has a dynamic section";
  std::cout << "ucode-agent binary size: " << elf.size() << " bytes\n";
}

}  // namespace
}  // namespace ucode_agent_e2e
