// One generation's choices, token by token, apart from how its tokens reach the engine: generate()
// feeds them one sequence at a time, the Batcher gathers several sequences into each step. Both
// hand it the logits after each token fed and feed back the token it returns, so that a
// generation is the same whichever runs it.
#pragma once

#include <optional>
#include <random>

#include "warren/inference/model.hpp"

namespace warren::inference {

class Decoding {
 public:
  // An empty prompt is an error (the engine has no logits to choose from), and so is a stop
  // string without the checkpoint's tokenizer. The options and `on_token` are copies: a
  // callable's state is its copy's.
  static Result<Decoding> begin(const Engine& engine, std::span<const std::int32_t> prompt,
                                const GenerateOptions& options,
                                std::function<void(std::int32_t)> on_token);

  // The logits after the last token fed: chooses the next token. It is returned when it is to be
  // fed (the generation goes on); nullopt once the generation has ended (EOS, a stop string, or
  // max_tokens chosen), the last token then never fed.
  std::optional<std::int32_t> next(std::span<const float> logits);
  Generated finish() &&;

 private:
  Decoding(const Engine& engine, const GenerateOptions& options,
           std::function<void(std::int32_t)> on_token, const Tokenizer* stop_tokenizer);
  const Engine* engine_;
  GenerateOptions options_;
  std::function<void(std::int32_t)> on_token_;
  const Tokenizer* stop_tokenizer_;  // set when there are stop strings to look for
  std::mt19937_64 rng_;
  Generated out_;
  std::string text_;  // decoded so far, while stop strings are looked for
  bool ended_ = false;
};

}  // namespace warren::inference
