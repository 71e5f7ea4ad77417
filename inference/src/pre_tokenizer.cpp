#include "pre_tokenizer.hpp"

#include "deepseek_split.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

namespace warren::inference {

namespace {

struct CodeDeleter {
  void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using Code = std::unique_ptr<pcre2_code, CodeDeleter>;
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

}  // namespace

struct PreTokenizer::State {
  std::vector<Code> codes;
  std::vector<bool> isolated;
  bool deepseek = false;  // the splits are DeepSeek's: deepseek_split does them
};

PreTokenizer::PreTokenizer(std::unique_ptr<State> state) : state_(std::move(state)) {}
PreTokenizer::PreTokenizer(PreTokenizer&&) noexcept = default;
PreTokenizer& PreTokenizer::operator=(PreTokenizer&&) noexcept = default;
PreTokenizer::~PreTokenizer() = default;

Result<PreTokenizer> PreTokenizer::make(const std::vector<Split>& splits, bool pcre2_only) {
  auto state = std::make_unique<State>();
  const auto& ours = deepseek();
  state->deepseek =
      !pcre2_only && splits.size() == ours.size() &&
      std::equal(splits.begin(), splits.end(), ours.begin(), [](const Split& a, const Split& b) {
        return a.pattern == b.pattern && a.isolated && b.isolated;
      });
  for (const Split& split : splits) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    // UCP: \s, \d, \w and POSIX classes by Unicode properties, as Oniguruma has them.
    // MATCH_INVALID_UTF: text that is not valid UTF-8 is still split (its bad bytes match no
    // class), since byte-level BPE encodes any bytes.
    Code code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(split.pattern.data()),
                            split.pattern.size(), PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                            &error, &offset, nullptr));
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof message);
      return tl::unexpected(Error{"pre-tokenizer pattern " + split.pattern + ": " +
                                  reinterpret_cast<const char*>(message) + " at offset " +
                                  std::to_string(offset)});
    }
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // the interpreter serves where JIT cannot
    state->codes.push_back(std::move(code));
    state->isolated.push_back(split.isolated);
  }
  return PreTokenizer(std::move(state));
}

const std::vector<PreTokenizer::Split>& PreTokenizer::deepseek() {
  static const std::vector<Split> splits = {
      {R"(\p{N}{1,3})"},
      {"[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+"},
      {R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
  };
  return splits;
}

const PreTokenizer::Split& PreTokenizer::gpt2() {
  static const Split split = {
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)"};
  return split;
}

namespace {

void split_at(const std::vector<Code>& codes, const std::vector<bool>& isolated,
              pcre2_match_data* match, std::size_t level, std::string_view text,
              const std::function<void(std::string_view)>& piece) {
  if (text.empty()) return;
  if (level == codes.size()) return piece(text);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0, gap = 0;
  while (start < text.size()) {
    const int rc = pcre2_match(codes[level].get(), subject, text.size(), start, 0, match, nullptr);
    if (rc < 0) break;  // no further match (or a matching error: the rest is one gap)
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const std::size_t begin = ovector[0], end = ovector[1];
    if (end == begin) {  // an empty match cuts nothing: move on by one byte
      start = end + 1;
      continue;
    }
    split_at(codes, isolated, match, level + 1, text.substr(gap, begin - gap), piece);
    if (isolated[level])
      split_at(codes, isolated, match, level + 1, text.substr(begin, end - begin), piece);
    gap = start = end;
  }
  split_at(codes, isolated, match, level + 1, text.substr(gap), piece);
}

}  // namespace

void PreTokenizer::split(std::string_view text,
                         const std::function<void(std::string_view)>& piece) const {
  if (state_->deepseek) return deepseek_split(text, piece);
  // One match block for the whole text; the recursion reads each match's offsets before the
  // next level overwrites them.
  MatchData match(pcre2_match_data_create(1, nullptr));
  split_at(state_->codes, state_->isolated, match.get(), 0, text, piece);
}

}  // namespace warren::inference
