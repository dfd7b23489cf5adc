// A connected Unix stream socket read and written as newline-delimited text with
// deadlines: the transport of QMP (one JSON object per line, docs/interop/qmp-spec.rst in
// QEMU: "the server sends ... terminated by CRLF"). Not thread-safe: one owner.
#ifndef UCODE_VMM_QMP_LINE_SOCKET_H_
#define UCODE_VMM_QMP_LINE_SOCKET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "host/base/unique_fd.h"

namespace ucode::qmp {

class LineSocket {
 public:
  // A line longer than this is refused (QEMU's replies are far smaller; a peer that
  // never ends a line must not grow our memory without bound).
  static constexpr size_t kMaxLine = 4 << 20;

  // Connects to the Unix socket `path`, retrying while it does not exist yet or refuses
  // (QEMU creates it shortly after it starts) until `deadline`.
  static absl::StatusOr<LineSocket> Connect(absl::string_view path, absl::Time deadline);

  // The next line without its line terminator (LF or CRLF). DEADLINE_EXCEEDED if no
  // whole line arrived by `deadline`; UNAVAILABLE on EOF.
  absl::StatusOr<std::string> ReadLine(absl::Time deadline);

  // Writes `text` and a newline, all of it, by `deadline`.
  absl::Status WriteLine(absl::string_view text, absl::Time deadline);

  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  LineSocket(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  // Waits until fd_ is ready for `events` (POLLIN/POLLOUT) or the deadline passes.
  absl::Status WaitReady(short events, absl::Time deadline, absl::string_view what);

  UniqueFd fd_;
  std::string path_;
  std::string buffer_;  // received bytes not yet returned as a line
};

}  // namespace ucode::qmp

#endif  // UCODE_VMM_QMP_LINE_SOCKET_H_
