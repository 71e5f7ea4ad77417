// GPT-2's byte-level alphabet, which byte-level BPE vocabularies (DeepSeek's among them) are
// written in: every byte is one printable Unicode character, so that a token's text in
// tokenizer.json is printable whatever its bytes. Printable ASCII and most of Latin-1 stand for
// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen...) are U+0100 onwards,
// in byte order: space is U+0120 'Ġ', newline U+010A 'Ċ'.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warren::inference::byte_level {

// The UTF-8 text of each byte's character.
const std::array<std::string, 256>& byte_chars();

// A vocabulary entry's raw bytes, from its byte-level text; nullopt when a character of it is
// not one of the 256.
std::optional<std::string> to_bytes(std::string_view text);

// The byte-level text of raw bytes.
std::string to_text(std::string_view bytes);

}  // namespace warren::inference::byte_level
