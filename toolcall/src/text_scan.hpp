// The hot loop of the parser: find the next byte in free text that may start markup ('<', or the
// first byte of '｜' U+FF5C = EF BD 9C), checking UTF-8 on the way. Eight ASCII bytes at a time
// when none of them is '<'.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "utf8.hpp"

namespace warren::toolcall::detail {

enum class Stop {
  End,        // nothing found up to the end of the input
  Lt,         // '<' at pos
  Bar,        // 0xEF lead byte at pos (possibly '｜'; the caller checks)
  BadUtf8,    // malformed sequence at pos
  Truncated,  // a sequence starting at pos is cut off by the end of the input
};

struct ScanStop {
  Stop stop;
  std::size_t pos;
};

namespace scan_internal {
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
// True when some byte of w equals b (the classic "has zero byte" trick on w ^ b).
inline bool has_byte(std::uint64_t w, unsigned char b) {
  const std::uint64_t x = w ^ (kOnes * b);
  return ((x - kOnes) & ~x & kHighs) != 0;
}
}  // namespace scan_internal

inline ScanStop scan_text(std::string_view s, std::size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  while (true) {
    while (pos + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, p + pos, 8);
      if ((w & scan_internal::kHighs) != 0 || scan_internal::has_byte(w, '<')) break;
      pos += 8;
    }
    if (pos >= n) return {Stop::End, n};
    const unsigned char c = p[pos];
    if (c == '<') return {Stop::Lt, pos};
    if (c < 0x80) {
      ++pos;
      continue;
    }
    const int len = utf8_sequence(p + pos, p + n);
    if (len == kUtf8Truncated) return {Stop::Truncated, pos};
    if (len == kUtf8Invalid) return {Stop::BadUtf8, pos};
    if (c == 0xEF) return {Stop::Bar, pos};
    pos += static_cast<std::size_t>(len);
  }
}

// Position of the first malformed or cut-off UTF-8 sequence in s, or npos.
inline std::size_t find_bad_utf8(std::string_view s, bool& truncated) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t pos = 0;
  while (pos < n) {
    while (pos + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, p + pos, 8);
      if ((w & scan_internal::kHighs) != 0) break;
      pos += 8;
    }
    if (pos >= n) break;
    if (p[pos] < 0x80) {
      ++pos;
      continue;
    }
    const int len = utf8_sequence(p + pos, p + n);
    if (len <= 0) {
      truncated = len == kUtf8Truncated;
      return pos;
    }
    pos += static_cast<std::size_t>(len);
  }
  return std::string_view::npos;
}

// Newlines (at most two) right before `end`: the "\n\n" that may belong to a block start.
inline std::size_t trailing_newlines(std::string_view s, std::size_t end) {
  std::size_t k = 0;
  while (k < 2 && end > k && s[end - k - 1] == '\n') ++k;
  return k;
}

}  // namespace warren::toolcall::detail
