#include "vmm/daemon/log.h"

#include <unistd.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ucode::daemon {
namespace {

std::atomic<bool> g_enabled{true};

void AppendValue(std::string& line, absl::string_view v) {
  bool plain = !v.empty();
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\\') plain = false;
  }
  if (plain) {
    line.append(v.data(), v.size());
    return;
  }
  line.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') line.push_back('\\');
    if (c == '\n') {
      line.append("\\n");
      continue;
    }
    line.push_back(c);
  }
  line.push_back('"');
}

}  // namespace

void SetLogEnabled(bool enabled) { g_enabled.store(enabled, std::memory_order_relaxed); }

void LogLine(absl::string_view event, std::initializer_list<LogField> fields) {
  if (!g_enabled.load(std::memory_order_relaxed)) return;
  std::string line = absl::StrCat(
      "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::Now(), absl::UTCTimeZone()),
      " event=");
  AppendValue(line, event);
  for (const LogField& f : fields) {
    absl::StrAppend(&line, " ", f.first, "=");
    AppendValue(line, f.second);
  }
  line.push_back('\n');
  // One write so concurrent lines never interleave; a short write to stderr is ignored.
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace ucode::daemon
