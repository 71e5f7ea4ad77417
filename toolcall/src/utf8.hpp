// UTF-8 checks shared by the parser and the JSON checker (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
#pragma once

#include <cstddef>

namespace warren::toolcall::detail {

enum : int { kUtf8Invalid = 0, kUtf8Truncated = -1 };

// Length (1-4) of the well-formed sequence starting at p; kUtf8Invalid if it is malformed;
// kUtf8Truncated if it is a valid beginning cut off by `end`.
inline int utf8_sequence(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = *p;
  if (c < 0x80) return 1;
  int length;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return kUtf8Invalid;
  }
  for (int i = 1; i < length; ++i) {
    if (p + i >= end) return kUtf8Truncated;
    const unsigned char b = p[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return kUtf8Invalid;
  }
  return length;
}

// Bytes at the end of [begin, end) that start a sequence not yet complete (0-3): the part a
// streaming reader holds back until more input arrives.
inline std::size_t utf8_incomplete_tail(const unsigned char* begin, const unsigned char* end) {
  for (std::size_t back = 1; back <= 3 && end - back >= begin; ++back) {
    const unsigned char c = *(end - back);
    if (c < 0x80) return 0;
    if (c >= 0xC0) return utf8_sequence(end - back, end) == kUtf8Truncated ? back : 0;
  }
  return 0;
}

}  // namespace warren::toolcall::detail
