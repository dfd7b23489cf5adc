#include "guest-agent/state_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest-agent/write_all.h"
#include "host/base/unique_fd_core.h"

namespace ucode_agent {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// mkdir -p with mode 0755 for each missing component.
bool MakeDirs(const std::string& dir, std::string* error) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i != dir.size() && dir[i] != '/') continue;
    std::string prefix = dir.substr(0, i);
    if (mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      *error = Errno("mkdir " + prefix);
      return false;
    }
  }
  return true;
}

}  // namespace

bool StateStore::Write(const std::string& name, const json::Value& record,
                       std::string* error) const {
  if (!MakeDirs(dir_, error)) return false;
  const std::string path = dir_ + "/" + name;
  const std::string tmp = dir_ + "/." + name + ".tmp";
  std::string data = json::Serialize(record);
  data.push_back('\n');
  {
    // O_NOFOLLOW: a planted symlink must not redirect a root-owned write.
    ucode::UniqueFd fd(
        open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd.valid()) {
      *error = Errno("open " + tmp);
      return false;
    }
    if (!WriteAll(fd.get(), data) || (sync_ && fsync(fd.get()) != 0)) {
      *error = Errno("write " + tmp);
      unlink(tmp.c_str());
      return false;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    *error = Errno("rename " + tmp + " to " + path);
    unlink(tmp.c_str());
    return false;
  }
  if (sync_) {
    ucode::UniqueFd d(open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.valid()) fsync(d.get());
  }
  return true;
}

std::optional<json::Value> StateStore::Read(const std::string& name, std::string* error) const {
  const std::string path = dir_ + "/" + name;
  ucode::UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno != ENOENT) *error = Errno("open " + path);
    return std::nullopt;
  }
  std::string data;
  char buf[4096];
  while (data.size() <= kMaxRecordBytes) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = Errno("read " + path);
      return std::nullopt;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  if (data.size() > kMaxRecordBytes) {
    *error = path + " is larger than " + std::to_string(kMaxRecordBytes) + " bytes";
    return std::nullopt;
  }
  json::ParseError perr;
  std::optional<json::Value> v = json::Parse(data, json::Limits{}, &perr);
  if (!v) *error = path + " is not valid JSON: " + perr.message;
  return v;
}

}  // namespace ucode_agent
