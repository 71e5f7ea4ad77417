// Choosing tokens: greedy, or temperature with top-k and top-p from a seeded generator; and the
// generation loop around the engine.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "decoding.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

std::string_view to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::Length:
      return "length";
    case FinishReason::Eos:
      return "eos";
    case FinishReason::Stop:
      return "stop";
  }
  return "length";
}

namespace {

// log softmax(logits)[token], in double.
double log_probability(std::span<const float> logits, std::int32_t token) {
  const double top = *std::max_element(logits.begin(), logits.end());
  double total = 0;
  for (float l : logits) total += std::exp(l - top);
  return logits[static_cast<std::size_t>(token)] - top - std::log(total);
}

std::int32_t pick(std::span<const float> logits, const SamplingOptions& o, std::mt19937_64& rng) {
  if (o.temperature <= 0) {  // greedy: the first of the largest
    return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) -
                                     logits.begin());
  }
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
  });
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < order.size())
    order.resize(static_cast<std::size_t>(o.top_k));
  const double top = logits[static_cast<std::size_t>(order[0])];
  std::vector<double> p;
  double total = 0;
  for (std::int32_t t : order)
    total += p.emplace_back(std::exp((logits[static_cast<std::size_t>(t)] - top) / o.temperature));
  if (o.top_p < 1) {
    double kept = 0;
    std::size_t n = 0;
    while (n < p.size() && kept < o.top_p * total) kept += p[n++];
    p.resize(std::max<std::size_t>(n, 1));
    total = std::accumulate(p.begin(), p.end(), 0.0);
  }
  const double u = std::uniform_real_distribution<double>(0, total)(rng);
  double run = 0;
  for (std::size_t i = 0; i < p.size(); ++i)
    if ((run += p[i]) > u) return order[i];
  return order[p.size() - 1];
}

}  // namespace

Decoding::Decoding(const Engine& engine, const GenerateOptions& options,
                   std::function<void(std::int32_t)> on_token, const Tokenizer* stop_tokenizer)
    : engine_(&engine),
      options_(options),
      on_token_(std::move(on_token)),
      stop_tokenizer_(stop_tokenizer),
      rng_(options.sampling.seed) {}

Result<Decoding> Decoding::begin(const Engine& engine, std::span<const std::int32_t> prompt,
                                 const GenerateOptions& options,
                                 std::function<void(std::int32_t)> on_token) {
  if (prompt.empty()) return tl::unexpected(Error{"the prompt has no tokens"});
  const Tokenizer* tokenizer = nullptr;
  if (!options.stop.empty()) {
    auto t = engine.tokenizer();
    if (!t) return tl::unexpected(t.error());
    tokenizer = *t;
  }
  return Decoding(engine, options, std::move(on_token), tokenizer);
}

std::optional<std::int32_t> Decoding::next(std::span<const float> logits) {
  if (ended_ || static_cast<std::int64_t>(out_.tokens.size()) >= options_.max_tokens) {
    ended_ = true;
    return std::nullopt;
  }
  std::vector<float> chosen_from(logits.begin(), logits.end());
  if (options_.logits_processor) options_.logits_processor(chosen_from, out_.tokens);
  const std::int32_t token = pick(chosen_from, options_.sampling, rng_);
  out_.tokens.push_back(token);
  out_.logprobs.push_back(log_probability(logits, token));  // the model's, unprocessed
  if (on_token_) on_token_(token);
  ended_ = true;
  if (token == engine_->config().eos_token_id) {
    out_.finish = FinishReason::Eos;
    return std::nullopt;
  }
  if (stop_tokenizer_) {
    // Byte-level BPE decodes token by token: the text grows by this token's bytes, and a stop
    // string not found before can only be one that ends in them (each looked for from where it
    // would overlap them), so a long generation is not decoded again at every token.
    const std::size_t before = text_.size();
    text_ += stop_tokenizer_->decode({&token, 1});
    const auto cut = std::find_if(options_.stop.begin(), options_.stop.end(), [&](const auto& s) {
      return text_.find(s, before - std::min(before, s.empty() ? 0 : s.size() - 1)) !=
             std::string::npos;
    });
    if (cut != options_.stop.end()) {
      out_.text = text_.substr(0, text_.find(*cut));
      out_.finish = FinishReason::Stop;
      return std::nullopt;
    }
  }
  if (static_cast<std::int64_t>(out_.tokens.size()) == options_.max_tokens) return std::nullopt;
  ended_ = false;
  return token;
}

Generated Decoding::finish() && {
  if (out_.finish != FinishReason::Stop)
    if (auto t = engine_->tokenizer(); t) {
      std::span<const std::int32_t> text_tokens(out_.tokens);
      if (out_.finish == FinishReason::Eos) text_tokens = text_tokens.first(text_tokens.size() - 1);
      out_.text = (*t)->decode(text_tokens);
    }
  return std::move(out_);
}

Result<Generated> generate(const Engine& engine, Sequence& sequence,
                           std::span<const std::int32_t> prompt, const GenerateOptions& options,
                           const std::function<void(std::int32_t token)>& on_token) {
  auto decoding = Decoding::begin(engine, prompt, options, on_token);
  if (!decoding) return tl::unexpected(decoding.error());
  auto logits = engine.feed(sequence, prompt);
  if (!logits) return tl::unexpected(logits.error());
  while (const auto token = decoding->next(*logits)) {
    const std::int32_t next[] = {*token};
    logits = engine.feed(sequence, next);
    if (!logits) return tl::unexpected(logits.error());
  }
  return std::move(*decoding).finish();
}

}  // namespace warren::inference
