// A caller that is not root: drops to the uid/gid it is given (and the supplementary groups
// of --groups, none by default), then calls ucoded's Unix socket. Exits with the gRPC
// status code (0 = OK, 7 = PERMISSION_DENIED, ...), or 100 if it could not drop privileges.
// usage: daemon_probe SOCKET UID GID [--groups=G,G...] [--inspect=HOST_PATH | --hold=N]
//   default: DescribeHost
//   --inspect: InspectImage of a host_path (prints the answer's message)
//   --hold: opens N raw connections, prints "connected K", then holds them until killed
#include <errno.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/ucode/v1/ucoded.grpc.pb.h"

namespace {

std::vector<gid_t> ParseGroups(const std::string& text) {
  std::vector<gid_t> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    out.push_back(static_cast<gid_t>(std::atoi(text.substr(start, comma - start).c_str())));
    start = comma + 1;
  }
  return out;
}

// Connections the caller keeps open without ever speaking HTTP/2.
int Hold(const char* path, int n) {
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    if (connect(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::printf("connect %d: %s\n", i, std::strerror(errno));
      close(fd);
      break;
    }
    fds.push_back(fd);
  }
  std::printf("connected %zu\n", fds.size());
  std::fflush(stdout);
  for (;;) pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) return 101;
  uid_t uid = static_cast<uid_t>(std::atoi(argv[2]));
  gid_t gid = static_cast<gid_t>(std::atoi(argv[3]));
  std::vector<gid_t> groups;
  std::string inspect;
  int hold = 0;
  for (int i = 4; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--groups=", 0) == 0)
      groups = ParseGroups(a.substr(9));
    else if (a.rfind("--inspect=", 0) == 0)
      inspect = a.substr(10);
    else if (a.rfind("--hold=", 0) == 0)
      hold = std::atoi(a.c_str() + 7);
    else
      return 101;
  }
  // Before any thread exists (gRPC starts its own), so every thread has the new ids.
  if (setgroups(groups.size(), groups.data()) != 0 || setresgid(gid, gid, gid) != 0 ||
      setresuid(uid, uid, uid) != 0 || getuid() != uid) {
    std::perror("drop privileges");
    return 100;
  }
  if (hold > 0) return Hold(argv[1], hold);
  auto stub = ucode::v1::UcodeService::NewStub(grpc::CreateChannel(
      std::string("unix:") + argv[1], grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  grpc::Status s;
  if (!inspect.empty()) {
    ucode::v1::InspectImageRequest req;
    req.mutable_image()->set_host_path(inspect);
    ucode::v1::InspectImageResponse resp;
    s = stub->InspectImage(&ctx, req, &resp);
  } else {
    ucode::v1::Host host;
    s = stub->DescribeHost(&ctx, ucode::v1::DescribeHostRequest(), &host);
  }
  std::printf("code=%d message=%s\n", s.error_code(), s.error_message().c_str());
  return s.error_code();
}
