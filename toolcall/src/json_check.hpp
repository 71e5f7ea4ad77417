// Checks that a piece of text is exactly one JSON value, without building it and without
// recursion (a value may nest 100,000 levels deep). In repair mode it also fixes the two mistakes
// models make inside strings, bad escapes (Windows paths) and raw control characters.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace warren::toolcall::detail {

struct JsonCheck {
  bool valid = false;
  std::string problem;      // what is wrong, when not valid
  std::size_t at = 0;       // byte offset of the problem within the text
  std::size_t repairs = 0;  // repair mode: how many fixes were made
};

// `repaired` null: check only. Otherwise it receives the repaired text (equal to `text` when
// nothing needed fixing) and the result describes the repaired text.
JsonCheck check_json(std::string_view text, std::string* repaired = nullptr);

// The deepest nesting of '[' and '{' in `text` (strings skipped), without checking anything else.
std::size_t json_text_depth(std::string_view text);

}  // namespace warren::toolcall::detail
