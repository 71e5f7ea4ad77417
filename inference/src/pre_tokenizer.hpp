// The pre-tokenizer of a byte-level BPE tokenizer.json: a sequence of regex splits, each cutting
// every piece the previous one left (Hugging Face tokenizers' `Split`, behaviour `Isolated`: a
// match is a piece and so is each gap between matches; `Removed`: the gaps only), then `ByteLevel`
// (optionally GPT-2's own split). Patterns are compiled by PCRE2 (JIT, Unicode properties),
// standing in for the Oniguruma engine the patterns were written for; both take \p{L} etc. from
// the Unicode character database and \s as Unicode White_Space.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::inference {

class PreTokenizer {
 public:
  // The pattern of each split, in order; `isolated` false is `Removed` (matches dropped).
  struct Split {
    std::string pattern;
    bool isolated = true;
  };
  // DeepSeek's splits are matched by hand (deepseek_split.hpp), unless `pcre2_only`.
  static Result<PreTokenizer> make(const std::vector<Split>& splits, bool pcre2_only = false);
  // DeepSeek-V3's (and V4's) pre-tokenizer: digits in runs of up to 3, runs of CJK ideographs
  // and kana, then words, punctuation with the line breaks after it, and whitespace.
  static const std::vector<Split>& deepseek();
  // GPT-2's split, which ByteLevel applies when its use_regex is true.
  static const Split& gpt2();

  PreTokenizer(PreTokenizer&&) noexcept;
  PreTokenizer& operator=(PreTokenizer&&) noexcept;
  ~PreTokenizer();

  // Calls `piece` with each piece of `text`, in order (views into `text`).
  void split(std::string_view text, const std::function<void(std::string_view)>& piece) const;

 private:
  struct State;
  explicit PreTokenizer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace warren::inference
