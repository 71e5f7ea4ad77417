// DeepSeek's pre-tokenizer patterns (PreTokenizer::deepseek()), matched by hand: the same pieces
// as PCRE2 gives for them, about ten times faster (docs/inference.md, "Tokenizer"). Character
// classes come from a table generated at build time from PCRE2 itself (warren-unicode-classes),
// so the two paths agree code point for code point; tokenizer_test.cpp compares them on random
// text, invalid UTF-8 included.
#pragma once

#include <functional>
#include <string_view>

namespace warren::inference {

void deepseek_split(std::string_view text, const std::function<void(std::string_view)>& piece);

}  // namespace warren::inference
