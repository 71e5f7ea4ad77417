// tokenizer.json's byte-level BPE: reading it, encoding and decoding (see model.hpp, Tokenizer).
// What Hugging Face tokenizers does, with these differences in what is accepted: only the
// components byte-level BPE tokenizers use are read (others are refused by name, never ignored),
// and encoding never adds tokens (no post-processor).
#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "byte_level.hpp"
#include "pre_tokenizer.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

using Json = nlohmann::json;

struct Merge {
  std::int32_t rank;
  std::int32_t merged;
};

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
         static_cast<std::uint32_t>(right);
}

Error json_error(const std::string& where, const std::string& why) {
  return Error{"tokenizer.json: " + where + ": " + why};
}

}  // namespace

struct Tokenizer::State {
  std::optional<PreTokenizer> pre;  // none: the text between added tokens is one piece
  std::unordered_map<std::string, std::int32_t> vocab;  // raw bytes -> id
  std::array<std::int32_t, 256> byte_ids{};
  std::unordered_map<std::uint64_t, Merge> merges;
  bool ignore_merges = false;         // a piece that is a vocabulary entry is that entry, unmerged
  std::vector<std::string> id_bytes;  // id -> bytes, for decoding
  std::vector<std::pair<std::string, std::int32_t>> added;  // longest first
  std::array<bool, 256> added_starts{};                     // first bytes of added tokens
  std::int32_t size = 0;

  Result<void> read_model(const nlohmann::json& model);
  void bpe(std::string_view piece, std::vector<std::int32_t>& out) const;
  void encode_text(std::string_view text, std::vector<std::int32_t>& out) const;
};

namespace {

// The pre-tokenizer's splits, from tokenizer.json's pre_tokenizer.
Result<std::vector<PreTokenizer::Split>> read_pre_tokenizer(const Json& pre) {
  std::vector<PreTokenizer::Split> splits;
  if (pre.is_null()) return splits;
  std::vector<Json> steps;
  if (pre.value("type", "") == "Sequence")
    for (const auto& step : pre.value("pretokenizers", Json::array())) steps.push_back(step);
  else
    steps.push_back(pre);
  for (const auto& step : steps) {
    const std::string type = step.value("type", "");
    if (type == "Split") {
      if (step.value("invert", false))
        return tl::unexpected(json_error("Split", "invert is not supported"));
      const std::string behavior = step.value("behavior", "");
      if (behavior != "Isolated" && behavior != "Removed")
        return tl::unexpected(
            json_error("Split", "behavior " + behavior + " is not supported (Isolated, Removed)"));
      const Json& pattern = step.value("pattern", Json::object());
      std::string regex;
      if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
        regex = pattern["Regex"].get<std::string>();
      } else if (pattern.contains("String") && pattern["String"].is_string()) {
        regex = "\\Q" + pattern["String"].get<std::string>() + "\\E";  // literal
      } else {
        return tl::unexpected(json_error("Split", "pattern is neither Regex nor String"));
      }
      splits.push_back({regex, behavior == "Isolated"});
    } else if (type == "ByteLevel") {
      if (step.value("add_prefix_space", false))
        return tl::unexpected(json_error("ByteLevel", "add_prefix_space is not supported"));
      if (step.value("use_regex", true)) splits.push_back(PreTokenizer::gpt2());
    } else {
      return tl::unexpected(json_error("pre_tokenizer", "type " + type + " is not supported"));
    }
  }
  return splits;
}

// Components that must be absent or do nothing for byte-level BPE as read here.
Result<void> check_components(const Json& json) {
  const Json& normalizer = json.value("normalizer", Json());
  if (!normalizer.is_null() && !(normalizer.value("type", "") == "Sequence" &&
                                 normalizer.value("normalizers", Json::array()).empty()))
    return tl::unexpected(
        json_error("normalizer", normalizer.value("type", "?") + " is not supported"));
  const Json& decoder = json.value("decoder", Json());
  if (!decoder.is_null() && decoder.value("type", "") != "ByteLevel")
    return tl::unexpected(json_error("decoder", decoder.value("type", "?") + " is not supported"));
  const Json& model = json.value("model", Json());
  if (model.value("type", "") != "BPE")
    return tl::unexpected(json_error("model", "type must be BPE"));
  for (const char* flag : {"fuse_unk", "byte_fallback"})
    if (model.value(flag, false))
      return tl::unexpected(json_error("model", std::string(flag) + " is not supported"));
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(affix) && !model[affix].is_null() && model[affix] != "")
      return tl::unexpected(json_error("model", std::string(affix) + " is not supported"));
  if (model.contains("dropout") && !model["dropout"].is_null())
    return tl::unexpected(json_error("model", "dropout is not supported"));
  return {};
}

}  // namespace

// The parts tokenizer.json's model gives: vocabulary, merges, the byte tokens.
Result<void> Tokenizer::State::read_model(const Json& model) {
  State& s = *this;
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return tl::unexpected(json_error("model", "vocab is not an object"));
  s.byte_ids.fill(-1);
  for (const auto& [text, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() > INT32_MAX)
      return tl::unexpected(json_error("model.vocab", text + ": not a token id"));
    // An entry that is not byte-level text (DeepSeek's special tokens are in the vocabulary as
    // they are written) stands for its own UTF-8 bytes: only the added tokens reach it.
    auto bytes = byte_level::to_bytes(text);
    if (!bytes) bytes = text;
    const auto n = static_cast<std::int32_t>(id.get<std::int64_t>());
    if (bytes->size() == 1) s.byte_ids[static_cast<unsigned char>((*bytes)[0])] = n;
    s.size = std::max(s.size, n + 1);
    s.vocab.emplace(std::move(*bytes), n);
  }
  for (unsigned b = 0; b < 256; ++b)
    if (s.byte_ids[b] < 0)
      return tl::unexpected(json_error(
          "model.vocab", "no token for byte " + std::to_string(b) + " (every byte needs one)"));
  const Json merge_list = model.value("merges", Json::array());
  std::int32_t rank = 0;
  for (const auto& m : merge_list) {
    std::string left, right;
    if (m.is_string()) {  // "left right": byte-level text holds no space
      const std::string text = m.get<std::string>();
      const auto space = text.find(' ');
      if (space == std::string::npos)
        return tl::unexpected(json_error("model.merges", text + ": not a pair"));
      left = text.substr(0, space), right = text.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      return tl::unexpected(json_error("model.merges", m.dump() + ": not a pair"));
    }
    auto l = byte_level::to_bytes(left), r = byte_level::to_bytes(right);
    if (!l || !r)
      return tl::unexpected(
          json_error("model.merges", left + " " + right + ": not byte-level text"));
    auto li = s.vocab.find(*l), ri = s.vocab.find(*r), mi = s.vocab.find(*l + *r);
    if (li == s.vocab.end() || ri == s.vocab.end() || mi == s.vocab.end())
      return tl::unexpected(json_error(
          "model.merges", left + " " + right + ": a part or the result is not in vocab"));
    // The first of duplicate merges counts, as in Hugging Face's reader.
    s.merges.emplace(pair_key(li->second, ri->second), Merge{rank++, mi->second});
  }
  s.ignore_merges = model.value("ignore_merges", false);
  return {};
}

Tokenizer::Tokenizer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Result<Tokenizer> Tokenizer::parse(std::string_view json_text) {
  const Json json = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object())
    return tl::unexpected(Error{"tokenizer.json: not a JSON object"});
  if (auto ok = check_components(json); !ok) return tl::unexpected(ok.error());
  auto state = std::make_unique<State>();
  if (auto ok = state->read_model(json["model"]); !ok) return tl::unexpected(ok.error());
  auto splits = read_pre_tokenizer(json.value("pre_tokenizer", Json()));
  if (!splits) return tl::unexpected(splits.error());
  if (!splits->empty()) {
    auto pre = PreTokenizer::make(*splits);
    if (!pre) return tl::unexpected(Error{"tokenizer.json: " + pre.error().message});
    state->pre = std::move(*pre);
  }
  for (const auto& token : json.value("added_tokens", Json::array())) {
    if (!token.contains("content") || !token["content"].is_string() || !token.contains("id") ||
        !token["id"].is_number_integer() || token["id"].get<std::int64_t>() < 0)
      return tl::unexpected(json_error("added_tokens", token.dump() + ": no content or id"));
    const std::string content = token["content"].get<std::string>();
    for (const char* flag : {"single_word", "lstrip", "rstrip"})
      if (token.value(flag, false))
        return tl::unexpected(
            json_error("added_tokens", content + ": " + flag + " is not supported"));
    if (content.empty()) return tl::unexpected(json_error("added_tokens", "an empty token"));
    const auto id = static_cast<std::int32_t>(token["id"].get<std::int64_t>());
    state->added.emplace_back(content, id);
    state->added_starts[static_cast<unsigned char>(content[0])] = true;
    state->size = std::max(state->size, id + 1);
  }
  // Leftmost-longest: at a position, the longest added token that starts there.
  std::stable_sort(state->added.begin(), state->added.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  state->id_bytes.resize(static_cast<std::size_t>(state->size));
  for (const auto& [bytes, id] : state->vocab)
    state->id_bytes[static_cast<std::size_t>(id)] = bytes;
  for (const auto& [content, id] : state->added)
    state->id_bytes[static_cast<std::size_t>(id)] = content;
  return Tokenizer(std::move(state));
}

Result<Tokenizer> Tokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected(Error{path + ": cannot be read"});
  std::ostringstream text;
  text << in.rdbuf();
  auto tokenizer = parse(text.str());
  if (!tokenizer) return tl::unexpected(Error{path + ": " + tokenizer.error().message.substr(16)});
  return tokenizer;
}

// Merges by rank, the lowest first and the leftmost of equal ranks first (a heap of candidate
// pairs; a popped pair whose symbols have changed since it was pushed is stale and skipped).
void Tokenizer::State::bpe(std::string_view piece, std::vector<std::int32_t>& out) const {
  if (ignore_merges) {
    if (auto whole = vocab.find(std::string(piece)); whole != vocab.end()) {
      out.push_back(whole->second);
      return;
    }
  }
  struct Symbol {
    std::int32_t id;
    int prev, next;  // neighbours' positions, -1 at the ends
  };
  struct Candidate {
    std::int32_t rank;
    int left;
    std::int32_t left_id, right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;  // a min-heap by std::greater
  symbols.clear();
  heap.clear();
  const int n = static_cast<int>(piece.size());
  for (int i = 0; i < n; ++i)
    symbols.push_back({byte_ids[static_cast<unsigned char>(piece[static_cast<std::size_t>(i)])],
                       i - 1, i + 1 < n ? i + 1 : -1});
  auto consider = [&](int left) {
    if (left < 0 || symbols[static_cast<std::size_t>(left)].next < 0) return;
    const Symbol& l = symbols[static_cast<std::size_t>(left)];
    const Symbol& r = symbols[static_cast<std::size_t>(l.next)];
    if (auto m = merges.find(pair_key(l.id, r.id)); m != merges.end()) {
      heap.push_back({m->second.rank, left, l.id, r.id});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& l = symbols[static_cast<std::size_t>(c.left)];
    if (l.id != c.left_id || l.next < 0) continue;  // merged away since
    Symbol& r = symbols[static_cast<std::size_t>(l.next)];
    if (r.id != c.right_id) continue;
    l.id = merges.at(pair_key(c.left_id, c.right_id)).merged;
    r.id = -1;  // dead
    l.next = r.next;
    if (r.next >= 0) symbols[static_cast<std::size_t>(r.next)].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }
  for (int i = 0; i >= 0 && i < n; i = symbols[static_cast<std::size_t>(i)].next)
    out.push_back(symbols[static_cast<std::size_t>(i)].id);
}

void Tokenizer::State::encode_text(std::string_view text, std::vector<std::int32_t>& out) const {
  if (text.empty()) return;
  // Pieces repeat (words, indentation): each distinct piece is merged once per call.
  std::unordered_map<std::string_view, std::pair<std::size_t, std::size_t>> seen;
  std::vector<std::int32_t> merged;
  auto piece = [&](std::string_view p) {
    auto [it, fresh] = seen.try_emplace(p, merged.size(), 0);
    if (fresh) {
      bpe(p, merged);
      it->second.second = merged.size() - it->second.first;
    }
    // Pieces are a token or a few: copied one by one, not by a memmove call each.
    for (std::size_t k = it->second.first, e = k + it->second.second; k < e; ++k)
      out.push_back(merged[k]);
  };
  if (pre)
    pre->split(text, piece);
  else
    piece(text);
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  const State& s = *state_;
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 2 + 16);  // byte-level BPE: rarely more than a token per 2 bytes
  std::size_t plain = 0;              // where the text not yet encoded starts
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!s.added_starts[static_cast<unsigned char>(text[i])]) continue;
    for (const auto& [content, id] : s.added) {
      if (text.compare(i, content.size(), content) != 0) continue;
      s.encode_text(text.substr(plain, i - plain), ids);
      ids.push_back(id);
      i += content.size() - 1;
      plain = i + 1;
      break;
    }
  }
  s.encode_text(text.substr(plain), ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string text;
  for (std::int32_t id : ids)
    if (id >= 0 && id < state_->size) text += state_->id_bytes[static_cast<std::size_t>(id)];
  return text;
}

std::optional<std::int32_t> Tokenizer::id_of(std::string_view token) const {
  for (const auto& [content, id] : state_->added)
    if (content == token) return id;
  if (auto it = state_->vocab.find(std::string(token)); it != state_->vocab.end())
    return it->second;
  return std::nullopt;
}

std::int32_t Tokenizer::size() const {
  return state_->size;
}

}  // namespace warren::inference
