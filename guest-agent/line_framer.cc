#include "guest-agent/line_framer.h"

namespace ucode_agent {
namespace {

bool IsBlank(std::string_view s) {
  return s.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

void LineFramer::Feed(std::string_view bytes, const Sink& sink) {
  size_t i = 0;
  while (i < bytes.size()) {
    // Find the next delimiter: newline or the resync byte.
    size_t j = i;
    while (j < bytes.size() && bytes[j] != '\n' &&
           static_cast<unsigned char>(bytes[j]) != kResyncByte) {
      ++j;
    }
    std::string_view chunk = bytes.substr(i, j - i);
    if (!discarding_) {
      if (buf_.size() + chunk.size() > max_) {
        buf_.clear();
        discarding_ = true;
        sink(Event::kOversized, {});
      } else {
        buf_.append(chunk);
      }
    }
    if (j == bytes.size()) return;  // partial line, wait for more
    bool newline = bytes[j] == '\n';
    i = j + 1;
    if (discarding_) {
      discarding_ = false;
      buf_.clear();
      continue;
    }
    if (!newline) {  // 0xFF: flush the partial line
      buf_.clear();
      continue;
    }
    std::string line;
    line.swap(buf_);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!IsBlank(line)) sink(Event::kLine, line);
  }
}

}  // namespace ucode_agent
