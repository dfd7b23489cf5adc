#include "vmm/qmp/qmp_client.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "host/base/unique_fd.h"

extern char** environ;

namespace ucode::qmp {
namespace {

using ::testing::HasSubstr;
constexpr absl::Duration kTimeout = absl::Seconds(20);

// A directory short enough for Unix socket paths (107 bytes, unix(7)).
std::string ShortTempDir() {
  const char* t = getenv("TEST_TMPDIR");
  if (t != nullptr && strlen(t) < 80) return t;
  char tmpl[] = "/tmp/qmp-test-XXXXXX";
  return mkdtemp(tmpl) != nullptr ? tmpl : "/tmp";
}

// A scripted QMP server on a Unix socket: accepts one client, then for each step
// either sends a line or reads one (and records it).
class ScriptedServer {
 public:
  struct Step {
    bool send;
    std::string line;  // to send; ignored for reads
  };
  ScriptedServer(std::string path, std::vector<Step> steps) : path_(std::move(path)) {
    unlink(path_.c_str());
    listener_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    EXPECT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listener_.get(), 1), 0);
    thread_ = std::thread([this, steps = std::move(steps)] { Run(steps); });
  }
  ~ScriptedServer() {
    thread_.join();
    unlink(path_.c_str());
  }
  std::vector<std::string> received;  // read after destruction of the client only

 private:
  void Run(const std::vector<Step>& steps) {
    UniqueFd conn(accept(listener_.get(), nullptr, nullptr));
    std::string buf;
    for (const Step& s : steps) {
      if (s.send) {
        std::string l = s.line + "\r\n";
        (void)!write(conn.get(), l.data(), l.size());
        continue;
      }
      while (buf.find('\n') == std::string::npos) {
        char c[512];
        ssize_t n = read(conn.get(), c, sizeof(c));
        if (n <= 0) return;
        buf.append(c, n);
      }
      received.push_back(buf.substr(0, buf.find('\n')));
      buf.erase(0, buf.find('\n') + 1);
    }
    // Hold the connection until the client closes it.
    char c;
    while (read(conn.get(), &c, 1) > 0) {
    }
  }

  std::string path_;
  UniqueFd listener_;
  std::thread thread_;
};

constexpr char kGreeting[] = R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})";

TEST(QmpClientTest, EventBetweenCommandAndReplyIsKeptForLater) {
  const std::string path = ShortTempDir() + "/s1.sock";
  std::vector<std::string> received;
  {
    ScriptedServer server(
        path, {{true, kGreeting},
               {false, ""},
               {true, R"({"return": {}, "id": 1})"},
               {false, ""},
               {true, R"({"event": "STOP", "data": {}, "timestamp": {"seconds": 5, "microseconds": 7}})"},
               {true, R"({"return": {}, "id": 2})"}});
    absl::StatusOr<std::unique_ptr<QmpClient>> c = QmpClient::Connect(path, kTimeout);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->greeting()["version"]["qemu"]["major"], 7);
    ASSERT_TRUE((*c)->Stop(kTimeout).ok());
    ASSERT_EQ((*c)->pending_events().size(), 1u);
    absl::StatusOr<QmpEvent> e = (*c)->WaitForEvent("STOP", kTimeout);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->qemu_time, absl::FromUnixMicros(5'000'007));
    EXPECT_TRUE((*c)->pending_events().empty());
    c->reset();
    received = server.received;
  }
  ASSERT_EQ(received.size(), 2u);
  EXPECT_THAT(received[0], HasSubstr(R"("execute":"qmp_capabilities")"));
  EXPECT_THAT(received[1], HasSubstr(R"("execute":"stop")"));
}

TEST(QmpClientTest, ErrorReplyNamesCommandClassAndDescription) {
  const std::string path = ShortTempDir() + "/s2.sock";
  ScriptedServer server(
      path, {{true, kGreeting},
             {false, ""},
             {true, R"({"return": {}, "id": 1})"},
             {false, ""},
             {true, R"({"error": {"class": "CommandNotFound", "desc": "no such"}, "id": 2})"}});
  absl::StatusOr<std::unique_ptr<QmpClient>> c = QmpClient::Connect(path, kTimeout);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<nlohmann::json> r = (*c)->Execute("frobnicate", {}, kTimeout);
  EXPECT_TRUE(absl::IsUnimplemented(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("frobnicate"));
  EXPECT_THAT(r.status().message(), HasSubstr("no such"));
}

TEST(QmpClientTest, SilentServerTimesOut) {
  const std::string path = ShortTempDir() + "/s3.sock";
  ScriptedServer server(path, {});  // accepts, never greets
  absl::StatusOr<std::unique_ptr<QmpClient>> c =
      QmpClient::Connect(path, absl::Milliseconds(200));
  EXPECT_TRUE(absl::IsDeadlineExceeded(c.status())) << c.status();
}

TEST(QmpClientTest, GarbageGreetingIsRefused) {
  const std::string path = ShortTempDir() + "/s4.sock";
  ScriptedServer server(path, {{true, "[1, 2"}});
  absl::StatusOr<std::unique_ptr<QmpClient>> c = QmpClient::Connect(path, kTimeout);
  EXPECT_TRUE(absl::IsDataLoss(c.status())) << c.status();
}

// --- Real QEMU, no guest: -machine none has no vCPUs but a full run state machine. ---

class QemuProcess {
 public:
  explicit QemuProcess(const std::string& qmp_path) {
    std::vector<std::string> argv = {"qemu-system-x86_64", "-machine", "none", "-nodefaults",
                                     "-display", "none", "-qmp",
                                     absl::StrCat("unix:", qmp_path, ",server=on,wait=off")};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    if (posix_spawnp(&pid_, args[0], nullptr, nullptr, args.data(), environ) != 0) pid_ = -1;
  }
  ~QemuProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  [[nodiscard]] bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

TEST(QmpClientTest, StopsAndContinuesARealQemu) {
  if (access("/usr/bin/qemu-system-x86_64", X_OK) != 0) {
    GTEST_SKIP() << "qemu-system-x86_64 not installed (qemu-system-x86; tools/install-deps)";
  }
  const std::string path = ShortTempDir() + "/qemu-qmp.sock";
  unlink(path.c_str());
  QemuProcess qemu(path);
  ASSERT_TRUE(qemu.started());
  absl::StatusOr<std::unique_ptr<QmpClient>> c = QmpClient::Connect(path, kTimeout);
  ASSERT_TRUE(c.ok()) << c.status();
  QmpClient& qmp = **c;
  EXPECT_TRUE(qmp.greeting().contains("version"));
  ASSERT_EQ(*qmp.QueryStatus(kTimeout), "running");

  ASSERT_TRUE(qmp.Stop(kTimeout).ok());
  absl::StatusOr<QmpEvent> stop = qmp.WaitForEvent("STOP", kTimeout);
  ASSERT_TRUE(stop.ok()) << stop.status();
  EXPECT_EQ(*qmp.QueryStatus(kTimeout), "paused");

  ASSERT_TRUE(qmp.Cont(kTimeout).ok());
  absl::StatusOr<QmpEvent> resume = qmp.WaitForEvent("RESUME", kTimeout);
  ASSERT_TRUE(resume.ok()) << resume.status();
  EXPECT_EQ(*qmp.QueryStatus(kTimeout), "running");
  EXPECT_GE(resume->qemu_time, stop->qemu_time);

  absl::StatusOr<nlohmann::json> bad = qmp.Execute("no-such-command", {}, kTimeout);
  EXPECT_TRUE(absl::IsUnimplemented(bad.status())) << bad.status();
}

}  // namespace
}  // namespace ucode::qmp
