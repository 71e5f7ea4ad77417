#include "byte_level.hpp"

namespace warren::inference::byte_level {

namespace {

bool stands_for_itself(unsigned b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::string utf8(unsigned code_point) {
  std::string s;
  if (code_point < 0x80) {
    s += static_cast<char>(code_point);
  } else {  // every character here is below U+0800: two bytes
    s += static_cast<char>(0xC0 | (code_point >> 6));
    s += static_cast<char>(0x80 | (code_point & 0x3F));
  }
  return s;
}

struct Alphabet {
  std::array<std::string, 256> chars;
  std::array<int, 0x200> byte_of;  // code point -> byte, -1 for none
  Alphabet() {
    byte_of.fill(-1);
    unsigned next = 0x100;
    for (unsigned b = 0; b < 256; ++b) {
      const unsigned cp = stands_for_itself(b) ? b : next++;
      chars[b] = utf8(cp);
      byte_of[cp] = static_cast<int>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::array<std::string, 256>& byte_chars() {
  return alphabet().chars;
}

std::optional<std::string> to_bytes(std::string_view text) {
  const Alphabet& a = alphabet();
  std::string bytes;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    unsigned cp;
    if (c < 0x80) {
      cp = c, i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3Fu), i += 2;
    } else {
      return std::nullopt;  // three- and four-byte characters are none of the 256
    }
    if (cp >= a.byte_of.size() || a.byte_of[cp] < 0) return std::nullopt;
    bytes += static_cast<char>(a.byte_of[cp]);
  }
  return bytes;
}

std::string to_text(std::string_view bytes) {
  std::string text;
  for (char b : bytes) text += alphabet().chars[static_cast<unsigned char>(b)];
  return text;
}

}  // namespace warren::inference::byte_level
