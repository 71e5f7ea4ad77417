// The scripted backend: completions from a file, parsed exactly as an embedded engine's stream is.
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "completion_reply.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

namespace {

constexpr std::string_view kEndOfSentence = "<｜end▁of▁sentence｜>";

class ScriptedBackend final : public ModelBackend {
 public:
  ScriptedBackend(std::vector<std::string> completions, std::size_t chunk_bytes)
      : completions_(std::move(completions)),
        chunk_bytes_(chunk_bytes),
        codec_(toolcall::make_codec(toolcall::Format::V4)) {}

  BackendKind backend() const override { return BackendKind::Scripted; }
  std::string model() const override { return "scripted"; }
  void skip_answers(int answers) override { next_ += static_cast<std::size_t>(answers); }

  boost::asio::awaitable<ModelResult> complete(ModelRequest request) override {
    // Let the other loops on this thread run, as a real backend's wait would.
    auto executor = co_await boost::asio::this_coro::executor;
    co_await boost::asio::post(executor, boost::asio::use_awaitable);
    if (next_ >= completions_.size())
      co_return tl::unexpected(ModelFailure{
          FailureKind::Protocol, 0, std::nullopt,
          "the script has no completion left for request " + std::to_string(next_ + 1)});
    const std::string& completion = completions_[next_++];

    auto prompt = detail::encode_prompt(*codec_, request);
    if (!prompt)
      co_return tl::unexpected(
          ModelFailure{FailureKind::BadRequest, 0, std::nullopt,
                       "the prompt cannot be encoded: " + prompt.error().message});
    ModelReply reply =
        detail::reply_from_completion(*codec_, completion, request, next_, chunk_bytes_);
    // Estimates (4 bytes a token): the scripted backend has no tokenizer.
    reply.usage.prompt_tokens = static_cast<std::int64_t>(prompt->size() / 4);
    reply.usage.completion_tokens = static_cast<std::int64_t>(completion.size() / 4);
    co_return reply;
  }

 private:
  std::vector<std::string> completions_;
  std::size_t chunk_bytes_;
  std::unique_ptr<toolcall::Codec> codec_;
  std::size_t next_ = 0;
};

// Raw completions, each ended by the end-of-sentence token (text after the last one, if any, is
// one more completion); or a JSON array of strings.
Result<std::vector<std::string>> split_script(const std::string& text, const std::string& file) {
  std::vector<std::string> completions;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    auto json = toolcall::parse_json(text);
    if (!json) return tl::unexpected(Error{file + ": " + json.error().message});
    for (const Json& item : *json) {
      if (!item.is_string())
        return tl::unexpected(Error{file + ": every completion must be a string"});
      completions.push_back(item.get<std::string>());
    }
    return completions;
  }
  std::size_t start = 0;
  for (std::size_t end; (end = text.find(kEndOfSentence, start)) != std::string::npos;) {
    completions.push_back(text.substr(start, end - start));
    start = end + kEndOfSentence.size();
    if (start < text.size() && text[start] == '\n') ++start;  // one completion per line block
  }
  if (text.find_first_not_of(" \t\r\n", start) != std::string::npos)
    completions.push_back(text.substr(start));
  return completions;
}

}  // namespace

std::unique_ptr<ModelBackend> make_scripted_backend_from(std::vector<std::string> completions,
                                                         std::size_t chunk_bytes) {
  return std::make_unique<ScriptedBackend>(std::move(completions), chunk_bytes);
}

Result<std::unique_ptr<ModelBackend>> make_scripted_backend(const std::string& file,
                                                            std::size_t chunk_bytes) {
  auto text = read_text_file(file, "the script");
  if (!text) return tl::unexpected(text.error());
  auto completions = split_script(*text, file);
  if (!completions) return tl::unexpected(completions.error());
  if (completions->empty()) return tl::unexpected(Error{file + ": no completions in the script"});
  return make_scripted_backend_from(std::move(*completions), chunk_bytes);
}

}  // namespace warren::orchestrator
