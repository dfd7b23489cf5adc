// UTF-8 validation shared by the JSON parser (rejects bad input) and writer (replaces it
// with U+FFFD), and by ucoded's journal (ToValidUtf8: proto3 strings must be UTF-8).
// RFC 3629 section 4: no overlong forms, no surrogates, nothing above U+10FFFF.
#ifndef UCODE_GUEST_AGENT_UTF8_H_
#define UCODE_GUEST_AGENT_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ucode_agent {

inline constexpr int kUtf8Invalid = 0;
inline constexpr int kUtf8Truncated = -1;

// Length (2..4) of the valid multi-byte sequence at s[i], kUtf8Truncated if a valid lead
// byte runs past the end of `s`, or kUtf8Invalid. Requires i < s.size().
inline int Utf8SequenceLength(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t len;
  uint32_t min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, min = 0x10000;
  } else {
    return kUtf8Invalid;
  }
  if (s.size() - i < len) return kUtf8Truncated;
  uint32_t cp = c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return kUtf8Invalid;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kUtf8Invalid;
  return static_cast<int>(len);
}

// `s` with every byte that does not start a valid sequence replaced by U+FFFD.
inline std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    const int len = Utf8SequenceLength(s, i);
    if (len <= 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

}  // namespace ucode_agent

#endif  // UCODE_GUEST_AGENT_UTF8_H_
