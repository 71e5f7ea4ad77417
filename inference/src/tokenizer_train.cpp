// Learning byte-level BPE merges (for the tokenizer.json of `warren model init`): the pieces of
// the corpus, as DeepSeek's pre-tokenizer cuts them, counted; then, until the vocabulary is full,
// the most frequent adjacent pair of tokens becomes a token. Pair counts are kept up to date as
// words change, with a lazily updated heap, so a merge costs what it touches, not the corpus.
#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "byte_level.hpp"
#include "pre_tokenizer.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

using Pair = std::pair<std::int32_t, std::int32_t>;

struct PairHash {
  std::size_t operator()(const Pair& p) const {
    return std::hash<std::uint64_t>()((static_cast<std::uint64_t>(p.first) << 32) ^
                                      static_cast<std::uint32_t>(p.second));
  }
};

struct Word {
  std::vector<std::int32_t> tokens;
  std::int64_t count;
};

class Trainer {
 public:
  Trainer(std::vector<Word> words, std::vector<std::string> token_bytes)
      : words_(std::move(words)), token_bytes_(std::move(token_bytes)) {
    for (std::size_t w = 0; w < words_.size(); ++w) add_pairs(w, +1);
    for (const auto& [pair, count] : counts_) heap_.push({count, pair});
  }

  // The next merge, or false when no pair occurs twice.
  bool merge_once(std::vector<Pair>& merges) {
    while (!heap_.empty()) {
      auto [count, pair] = heap_.top();
      heap_.pop();
      const auto it = counts_.find(pair);
      const std::int64_t now = it == counts_.end() ? 0 : it->second;
      if (now != count) {  // stale: counts changed since it was pushed
        if (now > 0) heap_.push({now, pair});
        continue;
      }
      if (count < 2) return false;
      apply(pair);
      merges.push_back(pair);
      return true;
    }
    return false;
  }

  const std::vector<std::string>& token_bytes() const { return token_bytes_; }

 private:
  struct Entry {
    std::int64_t count;
    Pair pair;
    // The most frequent first; equal counts by the smaller pair of ids, so that training is the
    // same on every run.
    bool operator<(const Entry& o) const {
      return count != o.count ? count < o.count : pair > o.pair;
    }
  };

  void add_pairs(std::size_t w, int sign) {
    const Word& word = words_[w];
    for (std::size_t i = 0; i + 1 < word.tokens.size(); ++i) {
      const Pair p{word.tokens[i], word.tokens[i + 1]};
      counts_[p] += sign * word.count;
      if (sign > 0) where_[p].insert(w);
    }
  }

  void apply(const Pair& pair) {
    const auto merged = static_cast<std::int32_t>(token_bytes_.size());
    token_bytes_.push_back(token_bytes_[static_cast<std::size_t>(pair.first)] +
                           token_bytes_[static_cast<std::size_t>(pair.second)]);
    std::vector<std::size_t> affected(where_[pair].begin(), where_[pair].end());
    std::sort(affected.begin(), affected.end());
    std::unordered_set<Pair, PairHash> touched;
    for (std::size_t w : affected) {
      Word& word = words_[w];
      add_pairs(w, -1);
      std::vector<std::int32_t> next;
      for (std::size_t i = 0; i < word.tokens.size(); ++i) {
        if (i + 1 < word.tokens.size() && word.tokens[i] == pair.first &&
            word.tokens[i + 1] == pair.second) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(word.tokens[i]);
        }
      }
      word.tokens = std::move(next);
      add_pairs(w, +1);
      for (std::size_t i = 0; i + 1 < word.tokens.size(); ++i)
        touched.insert({word.tokens[i], word.tokens[i + 1]});
    }
    counts_.erase(pair);
    where_.erase(pair);
    for (const Pair& p : touched)
      if (auto it = counts_.find(p); it != counts_.end() && it->second > 0)
        heap_.push({it->second, p});
  }

  std::vector<Word> words_;
  std::vector<std::string> token_bytes_;
  std::unordered_map<Pair, std::int64_t, PairHash> counts_;
  std::unordered_map<Pair, std::unordered_set<std::size_t>, PairHash> where_;
  std::priority_queue<Entry> heap_;
};

}  // namespace

std::string train_tokenizer(std::string_view corpus, std::size_t vocab_size,
                            const std::vector<std::string>& special_tokens) {
  const auto& splits = PreTokenizer::deepseek();
  auto pre = PreTokenizer::make(splits);  // the built-in patterns compile
  std::unordered_map<std::string_view, std::int64_t> counts;
  pre->split(corpus, [&](std::string_view piece) { ++counts[piece]; });

  // Ids: the special tokens, then the 256 bytes, then the merges in the order learned.
  const auto first_byte = static_cast<std::int32_t>(special_tokens.size());
  std::vector<std::string> token_bytes(special_tokens.begin(), special_tokens.end());
  for (int b = 0; b < 256; ++b) token_bytes.emplace_back(1, static_cast<char>(b));
  std::vector<Word> words;
  std::map<std::string_view, std::int64_t> ordered(counts.begin(), counts.end());
  for (const auto& [piece, count] : ordered) {
    Word word{{}, count};
    for (char c : piece) word.tokens.push_back(first_byte + static_cast<unsigned char>(c));
    words.push_back(std::move(word));
  }
  Trainer trainer(std::move(words), std::move(token_bytes));
  std::vector<Pair> merges;
  while (special_tokens.size() + 256 + merges.size() < vocab_size && trainer.merge_once(merges)) {
  }

  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  const auto& all = trainer.token_bytes();
  // The special tokens are in the vocabulary too, as written (as DeepSeek's are): Hugging Face
  // gives an added token the id of its vocabulary entry, and ids after the vocabulary's to
  // those without one.
  for (std::size_t id = 0; id < all.size(); ++id)
    vocab[id < special_tokens.size() ? all[id] : byte_level::to_text(all[id])] = id;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (std::size_t id = 0; id < special_tokens.size(); ++id)
    added.push_back({{"id", id},
                     {"content", special_tokens[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  nlohmann::ordered_json merge_list = nlohmann::ordered_json::array();
  for (const auto& [l, r] : merges)
    merge_list.push_back(byte_level::to_text(all[static_cast<std::size_t>(l)]) + " " +
                         byte_level::to_text(all[static_cast<std::size_t>(r)]));
  nlohmann::ordered_json split_steps = nlohmann::ordered_json::array();
  for (const auto& split : splits)
    split_steps.push_back({{"type", "Split"},
                           {"pattern", {{"Regex", split.pattern}}},
                           {"behavior", "Isolated"},
                           {"invert", false}});
  split_steps.push_back({{"type", "ByteLevel"},
                         {"add_prefix_space", false},
                         {"trim_offsets", true},
                         {"use_regex", false}});
  nlohmann::ordered_json json = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", nlohmann::ordered_json::array()}}},
      {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", split_steps}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", true},
        {"trim_offsets", true},
        {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  return json.dump(1) + "\n";
}

}  // namespace warren::inference
