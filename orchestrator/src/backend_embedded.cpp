// The embedded backend: the engine of inference/ in this process. A request is encoded by the V4
// prompt encoder, tokenized, and generated on the backend's own thread, while the event loop
// serves the other agent loops; the completion then goes through the same DSML parser as every
// other backend's answer.
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "completion_reply.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

namespace {

class EmbeddedBackend final : public ModelBackend {
 public:
  EmbeddedBackend(std::string name, std::shared_ptr<const inference::Engine> engine,
                  std::int64_t max_output_tokens, EmbeddedOptions options)
      : name_(std::move(name)),
        engine_(std::move(engine)),
        max_output_tokens_(max_output_tokens),
        options_(std::move(options)),
        codec_(toolcall::make_codec(toolcall::Format::V4)) {}
  ~EmbeddedBackend() override { worker_.join(); }

  BackendKind backend() const override { return BackendKind::Embedded; }
  std::string model() const override { return name_; }

  boost::asio::awaitable<ModelResult> complete(ModelRequest request) override {
    auto prompt = detail::encode_prompt(*codec_, request);
    if (!prompt)
      co_return tl::unexpected(
          ModelFailure{FailureKind::BadRequest, 0, std::nullopt,
                       "the prompt cannot be encoded: " + prompt.error().message});
    auto tokenizer = engine_->tokenizer();
    if (!tokenizer)
      co_return tl::unexpected(
          ModelFailure{FailureKind::BadRequest, 0, std::nullopt, tokenizer.error().message});
    const std::vector<std::int32_t> ids = (*tokenizer)->encode(*prompt);

    inference::GenerateOptions generate{
        .max_tokens = std::min(request.max_output_tokens, max_output_tokens_),
        .sampling = options_.sampling,
        .stop = {},
        .logits_processor = options_.logits_processor};
    // Generation is work for a core, not a wait: it runs on the worker thread, and this loop
    // comes back to its own executor when it is done.
    auto home = co_await boost::asio::this_coro::executor;
    co_await boost::asio::post(worker_, boost::asio::use_awaitable);
    auto sequence = engine_->start();
    auto generated = inference::generate(*engine_, sequence, ids, generate);
    co_await boost::asio::post(home, boost::asio::use_awaitable);
    if (!generated)
      co_return tl::unexpected(
          ModelFailure{FailureKind::BadRequest, 0, std::nullopt, generated.error().message});

    // The completion as a stream would carry it: EOS ends it, as the parser expects.
    std::string completion = generated->text;
    if (generated->finish == inference::FinishReason::Eos) completion += "<｜end▁of▁sentence｜>";
    ModelReply reply = detail::reply_from_completion(*codec_, completion, request, ++answers_, 0);
    if (generated->finish == inference::FinishReason::Length) reply.finish_reason = "length";
    reply.usage.prompt_tokens = static_cast<std::int64_t>(ids.size());
    reply.usage.completion_tokens = static_cast<std::int64_t>(generated->tokens.size());
    co_return reply;
  }

 private:
  std::string name_;
  std::shared_ptr<const inference::Engine> engine_;
  std::int64_t max_output_tokens_;
  EmbeddedOptions options_;
  std::unique_ptr<toolcall::Codec> codec_;
  boost::asio::thread_pool worker_{1};
  std::size_t answers_ = 0;
};

}  // namespace

Result<std::shared_ptr<const inference::Engine>> open_embedded_engine(const ModelConfig& config) {
  auto engine = inference::Engine::open(config.weights);
  if (!engine) return tl::unexpected(Error{"model " + config.name + ": " + engine.error().message});
  if (auto tokenizer = engine->tokenizer(); !tokenizer)
    return tl::unexpected(Error{"model " + config.name + ": " + tokenizer.error().message});
  return std::make_shared<const inference::Engine>(std::move(*engine));
}

Result<std::unique_ptr<ModelBackend>> make_embedded_backend(
    const ModelConfig& config, EmbeddedOptions options,
    std::shared_ptr<const inference::Engine> engine) {
  if (!engine) {
    auto opened = open_embedded_engine(config);
    if (!opened) return tl::unexpected(opened.error());
    engine = std::move(*opened);
  }
  return std::make_unique<EmbeddedBackend>(config.name, std::move(engine), config.max_output_tokens,
                                           std::move(options));
}

}  // namespace warren::orchestrator
