// A caller that is not root: drops to the uid/gid it is given (and no supplementary
// groups), then calls DescribeHost on ucoded's Unix socket. Exits with the gRPC status code
// (0 = OK, 7 = PERMISSION_DENIED, ...), or 100 if it could not drop privileges.
// usage: daemon_probe SOCKET UID GID
#include <grp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "grpcpp/grpcpp.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 4) return 101;
  uid_t uid = static_cast<uid_t>(std::atoi(argv[2]));
  gid_t gid = static_cast<gid_t>(std::atoi(argv[3]));
  // Before any thread exists (gRPC starts its own), so every thread has the new ids.
  if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0 || getuid() != uid) {
    std::perror("drop privileges");
    return 100;
  }
  auto stub = ucode::v1::UcodeService::NewStub(grpc::CreateChannel(
      std::string("unix:") + argv[1], grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ucode::v1::Host host;
  grpc::Status s = stub->DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host);
  std::printf("code=%d message=%s\n", s.error_code(), s.error_message().c_str());
  return s.error_code();
}
