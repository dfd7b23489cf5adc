// Test helpers: a temporary directory removed at scope exit and a way to
// drop small executable scripts into it.
#ifndef UCODE_GUEST_AGENT_TEST_UTIL_H_
#define UCODE_GUEST_AGENT_TEST_UTIL_H_

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace ucode_agent::testing {

class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = std::string(base ? base : "/tmp") + "/ucode-agent.XXXXXX";
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const { return path_; }

  // Writes `content` to path()/rel (creating parent directories) with `mode`.
  std::string Write(const std::string& rel, const std::string& content, mode_t mode = 0644) const {
    std::filesystem::path p = std::filesystem::path(path_) / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    chmod(p.c_str(), mode);
    return p.string();
  }

  std::string Read(const std::string& rel) const {
    std::ifstream in(std::filesystem::path(path_) / rel, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  std::string path_;
};

}  // namespace ucode_agent::testing

#endif  // UCODE_GUEST_AGENT_TEST_UTIL_H_
