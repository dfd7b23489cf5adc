// ucoded over real sockets: the Unix socket with its SO_PEERCRED allow list (a caller that
// dropped privileges is refused), and TCP, which only exists with mutual TLS.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/daemon_e2e/daemon_test_util.h"
#include "vmm/daemon/daemon.h"
#include "vmm/daemon/operations/fake_runner.h"
#include "vmm/daemon/log.h"
#include "vmm/ucodectl/client_channel.h"
#include "vmm/ucodectl/commands.h"

namespace ucode::daemon_e2e {
namespace {

using ::testing::HasSubstr;
using daemon::Daemon;
using daemon::DaemonOptions;

constexpr uid_t kNobody = 65534;

class DaemonSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    daemon::SetLogEnabled(false);
    ASSERT_FALSE(dir_.path().empty());
    options_.unix_socket = dir_.File("ucoded.sock");
    options_.journal_path = dir_.File("journal.sqlite");
    options_.allow_uids = {getuid()};
  }
  void Start() {
    auto d = Daemon::Start(options_, &runner_);
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = std::move(*d);
  }
  int Probe(uid_t uid, gid_t gid) {
    Subprocess p({Runfile("tests/daemon_e2e/daemon_probe"), options_.unix_socket,
                  std::to_string(uid), std::to_string(gid)},
                 dir_.File("probe.log"));
    return p.Wait();
  }
  // Root inside a user namespace (Bazel's sandbox) cannot become an unmapped uid.
  bool CanDropPrivileges() {
    return getuid() == 0 && Probe(0, 0) != kCannotDrop;
  }
  static constexpr int kCannotDrop = 100;

  ScratchDir dir_;
  DaemonOptions options_;
  daemon::FakeUpdateRunner runner_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(DaemonSocketTest, SocketIsGroupOnly) {
  Start();
  struct stat st;
  ASSERT_EQ(stat(options_.unix_socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(DaemonSocketTest, FullApplyOverUnixSocketWatchSeesEveryEvent) {
  Start();
  auto stub = UnixStub(options_.unix_socket);
  v1::Operation op;
  ASSERT_TRUE(StartApply(*stub, TestImage(), &op).ok());
  grpc::Status st;
  auto events = WatchAll(*stub, op.name(), &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].sequence(), i + 1);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front().step(), v1::STEP_VALIDATED);
  EXPECT_EQ(events.back().step(), v1::STEP_DONE);
  EXPECT_EQ(events.back().final_state().state(), v1::OPERATION_STATE_SUCCEEDED);
}

TEST_F(DaemonSocketTest, CallerOutsideAllowListIsRefused) {
  options_.unix_socket_mode = 0666;  // past the file mode, so SO_PEERCRED decides
  Start();
  if (!CanDropPrivileges()) GTEST_SKIP() << "needs real root to drop to another uid";
  // The connection is closed as soon as it is accepted: the caller holds nothing.
  EXPECT_EQ(Probe(kNobody, kNobody), static_cast<int>(grpc::UNAVAILABLE))
      << ReadFile(dir_.File("probe.log"));
  EXPECT_EQ(Probe(0, 0), 0) << ReadFile(dir_.File("probe.log"));
}

TEST_F(DaemonSocketTest, CallerAllowedByGroup) {
  options_.unix_socket_mode = 0666;
  options_.allow_gids = {kNobody};
  Start();
  if (!CanDropPrivileges()) GTEST_SKIP() << "needs real root to drop to another uid";
  EXPECT_EQ(Probe(kNobody, kNobody), 0) << ReadFile(dir_.File("probe.log"));
  EXPECT_EQ(Probe(kNobody, kNobody - 1), static_cast<int>(grpc::UNAVAILABLE));
}

TEST_F(DaemonSocketTest, DefaultModeKeepsOthersOut) {
  Start();  // 0660, owned by root: nobody cannot even connect
  if (!CanDropPrivileges()) GTEST_SKIP() << "needs real root to drop to another uid";
  EXPECT_EQ(Probe(kNobody, kNobody), static_cast<int>(grpc::UNAVAILABLE));
}

TEST_F(DaemonSocketTest, TcpWithoutCertificatesRefusesToStart) {
  options_.tcp_address = "127.0.0.1:0";
  auto d = Daemon::Start(options_, &runner_);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(d.status().message(), HasSubstr("mutual TLS"));
  options_.tls_cert_file = dir_.File("missing.crt");
  options_.tls_key_file = dir_.File("missing.key");
  options_.tls_client_ca_file = dir_.File("missing-ca.crt");
  d = Daemon::Start(options_, &runner_);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(DaemonSocketTest, MutualTlsRefusesClientsWithoutAValidCertificate) {
  ASSERT_TRUE(MakeTestCertificates(dir_.path())) << ReadFile(dir_.File("openssl.log"));
  options_.unix_socket = "";
  options_.tcp_address = "127.0.0.1:0";
  options_.tls_cert_file = dir_.File("server.crt");
  options_.tls_key_file = dir_.File("server.key");
  options_.tls_client_ca_file = dir_.File("ca.crt");
  Start();
  ASSERT_GT(daemon_->tcp_port(), 0);
  const std::string address = "localhost:" + std::to_string(daemon_->tcp_port());
  auto call = [&](const ctl::ClientTls& tls) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> ch = ctl::MakeChannel(address, tls);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return DescribeHost(*v1::UcodeService::NewStub(*ch));
  };
  ctl::ClientTls good{dir_.File("ca.crt"), dir_.File("client.crt"), dir_.File("client.key"), ""};
  grpc::Status ok = call(good);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  ctl::ClientTls rogue{dir_.File("ca.crt"), dir_.File("rogue.crt"), dir_.File("rogue.key"), ""};
  EXPECT_FALSE(call(rogue).ok());
  // No client certificate at all: only the server is authenticated, which is not enough.
  grpc::SslCredentialsOptions server_only;
  server_only.pem_root_certs = ReadFile(dir_.File("ca.crt"));
  auto stub = v1::UcodeService::NewStub(
      grpc::CreateChannel(address, grpc::SslCredentials(server_only)));
  EXPECT_FALSE(DescribeHost(*stub).ok());
  // Plain TCP: no TLS at all.
  stub =
      v1::UcodeService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  EXPECT_FALSE(DescribeHost(*stub).ok());
  // The client library refuses TCP without certificates before dialling.
  EXPECT_FALSE(ctl::MakeChannel(address, ctl::ClientTls{}).ok());
}

TEST_F(DaemonSocketTest, UcodectlClientModeAppliesAndFollows) {
  Start();
  std::string image_path = dir_.File("image.bin");
  std::ofstream(image_path) << TestImage();
  EXPECT_EQ(ctl::RunUcodectl({"--server", "unix:" + options_.unix_socket, "describe"}), 0);
  // The image's bytes travel by default; its path only with --host-path, and ucoded reads
  // that only beneath its image roots (this scratch directory is not one).
  EXPECT_EQ(ctl::RunUcodectl({"--server=unix:" + options_.unix_socket, "inspect", image_path}), 0);
  EXPECT_EQ(ctl::RunUcodectl(
                {"--server=unix:" + options_.unix_socket, "inspect", "--host-path", image_path}),
            1);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "apply", image_path}), 0);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "get", "operations/1"}), 0);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "sync-views"}), 0);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "list", "--all"}), 0);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "get", "operations/9"}), 1);
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "frobnicate"}), 2);
  runner_.FailAt(v1::STEP_ACTIVATED, absl::FailedPreconditionError("injected"));
  EXPECT_EQ(ctl::RunUcodectl({"--server", options_.unix_socket, "apply", image_path}), 1);
}

}  // namespace
}  // namespace ucode::daemon_e2e
