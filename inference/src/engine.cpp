// The engine: a checkpoint's weights bound once, and sequences fed one token at a time through
// the layers: embedding -> [attention, FFN with hyper-connections] x layers -> head.
#include <sys/stat.h>
#include <algorithm>
#include <fstream>
#include <thread>

#include "formats.hpp"
#include "forward.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

struct Sequence::State {
  std::int64_t length = 0;
  std::vector<LayerCache> layers;
};

Sequence::Sequence(std::unique_ptr<State> state) : state_(std::move(state)) {}
Sequence::Sequence(Sequence&&) noexcept = default;
Sequence& Sequence::operator=(Sequence&&) noexcept = default;
Sequence::~Sequence() = default;
std::int64_t Sequence::length() const {
  return state_->length;
}

Sequence Sequence::snapshot() const {
  return Sequence(std::make_unique<State>(*state_));
}

std::uint64_t Sequence::cache_bytes() const {
  std::uint64_t bytes = 0;
  auto rows = [&](const auto& list) {
    for (const auto& row : list) bytes += row.size() * sizeof(double);
  };
  for (const LayerCache& layer : state_->layers) {
    bytes += layer.window.bytes();
    for (const CompressorState* c : {&layer.kv, &layer.index}) {
      rows(c->a), rows(c->g), rows(c->prev_a), rows(c->prev_g);
      bytes += c->entries.bytes();
    }
  }
  return bytes;
}

struct Engine::State {
  std::unique_ptr<ThreadPool> pool;  // before the weights, whose layers use it
  Checkpoint checkpoint;
  ModelWeights weights;
  Rotaries rotaries;
  std::optional<Tokenizer> tokenizer;
  std::string tokenizer_error;

  // The tokens through every layer, layer after layer, each at its place in its sequence; the
  // logits of those asked for.
  Batch forward(std::span<const Place> places, std::span<const std::int32_t> tokens,
                std::span<const std::uint8_t> logits_of) const;
  Result<void> check(std::span<const std::int32_t> tokens) const;
};

Engine::Engine(std::unique_ptr<State> state) : state_(std::move(state)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Result<Engine> Engine::open(const std::string& dir, EngineOptions options) {
  if (!supported(options.kernels))
    return tl::unexpected(Error{"the " + std::string(to_string(options.kernels)) +
                                " kernels need a CPU that has them; this one has not"});
  auto checkpoint = Checkpoint::open(dir);
  if (!checkpoint) return tl::unexpected(checkpoint.error());
  const unsigned threads =
      options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  auto pool = std::make_unique<ThreadPool>(threads);
  checkpoint->populate();
  auto weights = bind_weights(*checkpoint, pool.get(), options.kernels);
  if (!weights) return tl::unexpected(weights.error());
  const Config& c = checkpoint->config();
  auto state = std::unique_ptr<State>(
      new State{std::move(pool), std::move(*checkpoint), std::move(*weights),
                Rotaries{Rotary(c, false), Rotary(c, true)}, std::nullopt, ""});
  const std::string path = dir + "/tokenizer.json";
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    auto tokenizer = Tokenizer::load(path);
    if (!tokenizer) return tl::unexpected(tokenizer.error());
    state->tokenizer = std::move(*tokenizer);
  } else {
    state->tokenizer_error = dir + ": no tokenizer.json (give token ids instead)";
  }
  return Engine(std::move(state));
}

const Config& Engine::config() const {
  return state_->checkpoint.config();
}

Result<const Tokenizer*> Engine::tokenizer() const {
  if (!state_->tokenizer) return tl::unexpected(Error{state_->tokenizer_error});
  return &*state_->tokenizer;
}

Sequence Engine::start() const {
  auto s = std::make_unique<Sequence::State>();
  s->layers.assign(static_cast<std::size_t>(config().num_hidden_layers), LayerCache(config()));
  return Sequence(std::move(s));
}

Result<void> Engine::State::check(std::span<const std::int32_t> tokens) const {
  const std::int64_t vocab = checkpoint.config().vocab_size;
  for (std::int32_t token : tokens)
    if (token < 0 || token >= vocab)
      return tl::unexpected(Error{"token id " + std::to_string(token) +
                                  " is outside the vocabulary (0 to " + std::to_string(vocab - 1) +
                                  ")"});
  return {};
}

Result<std::vector<float>> Engine::feed(Sequence& sequence,
                                        std::span<const std::int32_t> tokens) const {
  if (auto ok = state_->check(tokens); !ok) return tl::unexpected(ok.error());
  // A prompt goes through the layers in chunks, so that each weight read serves every token of
  // one (an expert, those that chose it); a chunk's activations take a few MB a hundred tokens.
  constexpr std::size_t kChunk = 128;
  std::vector<double> logits;
  for (std::size_t at = 0; at < tokens.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, tokens.size() - at);
    std::vector<Place> places;
    for (std::size_t i = 0; i < n; ++i)
      places.push_back(
          {&sequence.state_->layers, sequence.state_->length + static_cast<std::int64_t>(i)});
    std::vector<std::uint8_t> last(n, 0);
    last.back() = 1;
    logits = std::move(state_->forward(places, tokens.subspan(at, n), last).back());
    sequence.state_->length += static_cast<std::int64_t>(n);
  }
  return std::vector<float>(logits.begin(), logits.end());
}

Result<std::vector<std::vector<float>>> Engine::step(std::span<Sequence* const> sequences,
                                                     std::span<const std::int32_t> tokens) const {
  if (sequences.size() != tokens.size())
    return tl::unexpected(Error{"a step takes one token for each sequence (" +
                                std::to_string(sequences.size()) + " sequences, " +
                                std::to_string(tokens.size()) + " tokens)"});
  if (auto ok = state_->check(tokens); !ok) return tl::unexpected(ok.error());
  std::vector<Place> places;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j)
      if (sequences[j] == sequences[i])
        return tl::unexpected(Error{"sequence " + std::to_string(i) + " is also sequence " +
                                    std::to_string(j) + " of the same step"});
    places.push_back({&sequences[i]->state_->layers, sequences[i]->state_->length});
  }
  const std::vector<std::uint8_t> all(sequences.size(), 1);
  const Batch logits = state_->forward(places, tokens, all);
  std::vector<std::vector<float>> out;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    ++sequences[i]->state_->length;
    out.emplace_back(logits[i].begin(), logits[i].end());
  }
  return out;
}

// Each token's embedding copied into every stream; each layer's attention, token after token (each
// attends to its sequence as the ones before left it), and its FFN, all the tokens at once, with
// their hyper-connections; the head, for the tokens whose logits are asked for.
Batch Engine::State::forward(std::span<const Place> places, std::span<const std::int32_t> tokens,
                             std::span<const std::uint8_t> logits_of) const {
  const Config& c = checkpoint.config();
  const auto D = static_cast<std::size_t>(c.hidden_size), hc = static_cast<std::size_t>(c.hc_mult);
  Batch streams;
  for (std::int32_t token : tokens) {
    std::vector<double> x(hc * D);
    for (std::size_t i = 0; i < D; ++i)
      x[i] = formats::bf16_to_float(weights.embed[static_cast<std::size_t>(token) * D + i]);
    for (std::size_t j = 1; j < hc; ++j) std::copy_n(x.begin(), D, x.begin() + j * D);
    streams.push_back(std::move(x));
  }
  for (std::size_t l = 0; l < weights.layers.size(); ++l) {
    const LayerWeights& w = weights.layers[l];
    hyper_connected(c, w.hc_attn, w.attn_norm, streams,
                    [&](const Batch& x) { return attention_block(c, w, rotaries, places, l, x); });
    hyper_connected(c, w.hc_ffn, w.ffn_norm, streams,
                    [&](const Batch& x) { return moe_block(c, w.ffn, x, tokens); });
  }
  Batch logits;
  for (std::size_t t = 0; t < tokens.size(); ++t)
    logits.push_back(logits_of[t] ? head_block(c, weights, streams[t]) : std::vector<double>{});
  return logits;
}

}  // namespace warren::inference
