// Structured log lines for ucoded: `ts=... event=NAME key=value ...` on stderr, one line
// per call (journald and log shippers split on newlines and parse key=value).
#ifndef UCODE_VMM_DAEMON_LOG_H_
#define UCODE_VMM_DAEMON_LOG_H_

#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace ucode::daemon {

using LogField = std::pair<absl::string_view, std::string>;

// Thread-safe: each line is written with one write(2). Values with spaces, quotes or
// '=' are quoted and escaped.
void LogLine(absl::string_view event, std::initializer_list<LogField> fields);

// Silences LogLine (benchmarks and load tests, where logging would be the measurement).
void SetLogEnabled(bool enabled);

}  // namespace ucode::daemon

#endif  // UCODE_VMM_DAEMON_LOG_H_
