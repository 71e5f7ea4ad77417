// The three splits of DeepSeek's pre-tokenizer, each applied to the pieces the one before left,
// each keeping its matches and the gaps between them as pieces (behaviour Isolated):
//   1. \p{N}{1,3}
//   2. [\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+
//   3. A1 [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
//      A2 | [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//      A3 | ' '?[\p{P}\p{S}]+[\r\n]*
//      A4 | \s*[\r\n]+
//      A5 | \s+(?!\S)
//      A6 | \s+
// A regex engine tries each start position in turn and, at one, the alternatives in order, the
// first that matches winning, its quantifiers greedy with backtracking. What backtracking does
// here, worked out once: A2 without its optional character when the rest fails; A4 ends after
// the last line break of the whitespace run; A5 gives back the run's last character when a
// non-space follows. Bytes that are not valid UTF-8 match nothing (PCRE2's MATCH_INVALID_UTF),
// not even a negated class or \S, so they stay in gaps.
#include "deepseek_split.hpp"

#include <cstdint>

namespace warren::inference {

namespace {

#include "unicode_classes.inc"

enum : unsigned {
  kLetter = 1,
  kMark = 2,
  kNumber = 4,
  kPunctuation = 8,
  kSymbol = 16,
  kSpace = 32,
  kValid = 64,  // a character, not an invalid byte
};

struct Char {
  char32_t cp;
  unsigned length;  // bytes
  unsigned flags;
};

Char decode_multibyte(std::string_view text, std::size_t i);

// The character at `i` (which is within `text`), or one invalid byte.
inline Char char_at(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return {c, 1, kValid | kClassBlocks[kClassBlockOf[0]][c]};
  return decode_multibyte(text, i);
}

[[gnu::noinline]] Char decode_multibyte(std::string_view text, std::size_t i) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned c = s[i];
  char32_t cp;
  unsigned length;
  if (c >= 0xC2 && c <= 0xDF && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
    cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu), length = 2;
  } else if (c >= 0xE0 && c <= 0xEF && i + 2 < n && (s[i + 1] & 0xC0) == 0x80 &&
             (s[i + 2] & 0xC0) == 0x80) {
    cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu), length = 3;
    if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) return {c, 1, 0};  // overlong, surrogate
  } else if (c >= 0xF0 && c <= 0xF4 && i + 3 < n && (s[i + 1] & 0xC0) == 0x80 &&
             (s[i + 2] & 0xC0) == 0x80 && (s[i + 3] & 0xC0) == 0x80) {
    cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
         (s[i + 3] & 0x3Fu),
    length = 4;
    if (cp < 0x10000 || cp > 0x10FFFF) return {c, 1, 0};
  } else {
    return {c, 1, 0};
  }
  return {cp, length, kValid | kClassBlocks[kClassBlockOf[cp >> 8]][cp & 0xFF]};
}

bool is_break(const Char& c) {
  return c.cp == '\r' || c.cp == '\n';
}

// Applies one split: `find(text, from, begin, end)` finds the next match at or after `from`.
template <class Find, class Next>
void split_with(std::string_view text, Find find, Next next) {
  std::size_t gap = 0, from = 0, begin, end;
  while (from < text.size() && find(text, from, begin, end)) {
    if (begin > gap) next(text.substr(gap, begin - gap));
    next(text.substr(begin, end - begin));
    gap = from = end;
  }
  if (gap < text.size()) next(text.substr(gap));
}

// 1. \p{N}{1,3}
bool find_digits(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end) {
  for (std::size_t i = from; i < text.size();) {
    // Most text is ASCII, whose only numbers are the digits: skip the rest bytewise.
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80 && (byte < '0' || byte > '9')) {
      ++i;
      continue;
    }
    Char c = char_at(text, i);
    if (!(c.flags & kNumber)) {
      i += c.length;
      continue;
    }
    begin = i;
    end = i + c.length;
    for (int count = 1; count < 3 && end < text.size(); ++count) {
      c = char_at(text, end);
      if (!(c.flags & kNumber)) break;
      end += c.length;
    }
    return true;
  }
  return false;
}

// 2. Runs of CJK ideographs (U+4E00..U+9FA5) and kana.
bool is_cjk(const Char& c) {
  return (c.cp >= 0x4E00 && c.cp <= 0x9FA5) || (c.cp >= 0x3040 && c.cp <= 0x30FF);
}

bool find_cjk(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end) {
  for (std::size_t i = from; i < text.size();) {
    if (static_cast<unsigned char>(text[i]) < 0x80) {  // no ASCII character is CJK
      ++i;
      continue;
    }
    Char c = char_at(text, i);
    if (!(c.flags & kValid) || !is_cjk(c)) {
      i += c.length;
      continue;
    }
    begin = i;
    end = i + c.length;
    while (end < text.size() && (c = char_at(text, end), (c.flags & kValid) && is_cjk(c)))
      end += c.length;
    return true;
  }
  return false;
}

// 3. The end of the longest run from `i` of characters with any of `flags` (i when none).
std::size_t run_of(std::string_view text, std::size_t i, unsigned flags) {
  while (i < text.size()) {
    const Char c = char_at(text, i);
    if (!(c.flags & flags)) break;
    i += c.length;
  }
  return i;
}

// The end of a match of the alternation at `s`, or 0 when none matches there (a match is never
// empty, so its end is never s... and s + length > 0).
std::size_t match_words_at(std::string_view text, std::size_t s) {
  const Char c0 = char_at(text, s);
  const std::size_t after0 = s + c0.length;
  // A1: one ASCII punctuation character, then ASCII letters.
  auto ascii_letter = [&](std::size_t i) {
    const char ch = text[i];
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
  };
  if (c0.cp < 0x80 && c0.length == 1 && (c0.flags & (kPunctuation | kSymbol)) &&
      after0 < text.size() && ascii_letter(after0)) {
    std::size_t end = after0;
    while (end < text.size() && ascii_letter(end)) ++end;
    return end;
  }
  // A2: an optional character that is none of CR, LF, letter, punctuation or symbol, then
  // letters and marks; without the optional one when the rest does not follow it.
  if ((c0.flags & kValid) && !is_break(c0) && !(c0.flags & (kLetter | kPunctuation | kSymbol))) {
    const std::size_t end = run_of(text, after0, kLetter | kMark);
    if (end > after0) return end;
  }
  if (c0.flags & (kLetter | kMark)) return run_of(text, after0, kLetter | kMark);
  // A3: an optional space, punctuation and symbols, then line breaks.
  {
    const std::size_t start = c0.cp == ' ' ? after0 : s;
    const std::size_t end = run_of(text, start, kPunctuation | kSymbol);
    if (end > start) {
      std::size_t breaks = end;
      while (breaks < text.size() && (text[breaks] == '\r' || text[breaks] == '\n')) ++breaks;
      return breaks;
    }
  }
  if (!(c0.flags & kSpace)) return 0;
  // The whitespace run, and where its last line break ends.
  std::size_t end = s, after_break = 0, last_start = s;
  while (end < text.size()) {
    const Char c = char_at(text, end);
    if (!(c.flags & kSpace)) break;
    last_start = end;
    end += c.length;
    if (is_break(c)) after_break = end;
  }
  if (after_break) return after_break;  // A4
  // A5: not followed by a non-space (an invalid byte is no \S); else give the last one back.
  if (end == text.size() || !(char_at(text, end).flags & kValid)) return end;
  if (last_start > s) return last_start;
  return end;  // A6
}

bool find_words(std::string_view text, std::size_t from, std::size_t& begin, std::size_t& end) {
  for (std::size_t s = from; s < text.size(); s += char_at(text, s).length) {
    if (const std::size_t e = match_words_at(text, s)) {
      begin = s;
      end = e;
      return true;
    }
  }
  return false;
}

}  // namespace

void deepseek_split(std::string_view text, const std::function<void(std::string_view)>& piece) {
  split_with(text, find_digits, [&](std::string_view a) {
    split_with(a, find_cjk, [&](std::string_view b) { split_with(b, find_words, piece); });
  });
}

}  // namespace warren::inference
