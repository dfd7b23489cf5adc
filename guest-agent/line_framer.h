// Splits the byte stream from the host into command lines.
//
// libvirt writes every agent command as one line of JSON ending in "\n"
// (src/qemu/qemu_agent.c, LINE_ENDING), and so does every QMP client we know
// of, so the agent frames by line. Two resynchronisation rules keep a
// confused or hostile host from wedging the stream:
//   * 0xFF (never valid in UTF-8) discards any partial line. QEMU's guest
//     agent protocol reference (guest-sync-delimited, and the 2012 libvir-list
//     patch that introduced it) lets a client send it to flush the agent's
//     parser state before a guest-sync.
//   * A line longer than the limit is reported once and then discarded up to
//     the next "\n" or 0xFF, with a bounded buffer the whole time.
#ifndef UCODE_GUEST_AGENT_LINE_FRAMER_H_
#define UCODE_GUEST_AGENT_LINE_FRAMER_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace ucode_agent {

inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr unsigned char kResyncByte = 0xFF;

class LineFramer {
 public:
  enum class Event {
    kLine,       // a complete line (without "\n"; a trailing "\r" is dropped)
    kOversized,  // a line exceeded the limit; it is being discarded
  };
  using Sink = std::function<void(Event, std::string_view line)>;

  explicit LineFramer(size_t max_line_bytes = kMaxLineBytes) : max_(max_line_bytes) {}

  // Consumes bytes, calling `sink` for each event in stream order.
  // Whitespace-only lines are dropped silently.
  void Feed(std::string_view bytes, const Sink& sink);

  // Forgets any partial line (used when the host disconnects).
  void Reset() {
    buf_.clear();
    discarding_ = false;
  }

 private:
  size_t max_;
  std::string buf_;
  bool discarding_ = false;
};

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_LINE_FRAMER_H_
