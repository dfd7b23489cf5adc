// Small JSON records under the agent's state directory (/run/ucode-agent by
// default: tmpfs, so records describe the current boot only).
//
// Writes are atomic: a reader (guest-ucode-status, a monitoring script) sees
// either the previous record or the new one, never a torn file. The recipe is
// write to a temporary file in the same directory, fsync, rename(2) over the
// old name, fsync the directory (rename is atomic within one file system,
// POSIX rename()).
#ifndef UCODE_GUEST_AGENT_STATE_STORE_H_
#define UCODE_GUEST_AGENT_STATE_STORE_H_

#include <optional>
#include <string>

#include "guest-agent/json.h"

namespace ucode_agent {

inline constexpr size_t kMaxRecordBytes = 64 * 1024;

class StateStore {
 public:
  // `sync`: fsync file and directory (off only in the fuzzer, for speed).
  explicit StateStore(std::string dir, bool sync = true) : dir_(std::move(dir)), sync_(sync) {}

  // Creates the directory if needed and replaces `name` with `record`.
  [[nodiscard]] bool Write(const std::string& name, const json::Value& record,
                           std::string* error) const;
  // nullopt if the record does not exist or is unreadable/corrupt (`error` says which).
  [[nodiscard]] std::optional<json::Value> Read(const std::string& name, std::string* error) const;

  [[nodiscard]] const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool sync_;
};

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_STATE_STORE_H_
