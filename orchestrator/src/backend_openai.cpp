// OpenAI Chat Completions, streamed (DeepSeek's API, vLLM, SGLang): reasoning_content and content
// deltas, tool_calls deltas assembled by index, usage with cached tokens.
//
// DeepSeek requires every earlier tool-calling assistant turn to carry its reasoning_content back
// (HTTP 400 otherwise; an empty string is accepted), so the history always includes it.
#include "http_backends.hpp"

namespace warren::orchestrator::detail {

namespace {

Json message_json(const toolcall::Message& m) {
  switch (m.role) {
    case toolcall::Role::System:
      return {{"role", "system"}, {"content", m.content}};
    case toolcall::Role::Tool:
      return {{"role", "tool"}, {"tool_call_id", m.tool_call_id}, {"content", m.content}};
    case toolcall::Role::Assistant: {
      Json a = {{"role", "assistant"}, {"content", m.content}};
      a["reasoning_content"] = m.reasoning_content.value_or("");
      if (!m.tool_calls.empty()) {
        Json calls = Json::array();
        for (const toolcall::ToolCall& c : m.tool_calls)
          calls.push_back({{"id", c.id},
                           {"type", "function"},
                           {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        a["tool_calls"] = calls;
      }
      return a;
    }
    default:
      return {{"role", "user"}, {"content", m.content}};
  }
}

Json request_json(const ModelRequest& r, const std::string& model) {
  Json messages = Json::array();
  for (const toolcall::Message& m : r.messages) messages.push_back(message_json(m));
  Json body = {{"model", model},
               {"messages", messages},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}},
               {"max_tokens", r.max_output_tokens}};
  if (!r.tools.empty()) {
    Json tools = Json::array();
    for (const Json& f : r.tools) tools.push_back({{"type", "function"}, {"function", f}});
    body["tools"] = tools;
  }
  body["thinking"] = {{"type", r.thinking == Thinking::Off ? "disabled" : "enabled"}};
  if (r.thinking != Thinking::Off)
    body["reasoning_effort"] = r.thinking == Thinking::Max ? "max" : "high";
  return body;
}

// Assembles one streamed answer from its chunks.
class Assembly {
 public:
  // False when the chunk cannot be read (the answer is then a protocol failure).
  bool add(std::string_view data) {
    if (data == "[DONE]") {
      done_ = true;
      return false;  // stop reading
    }
    auto chunk = toolcall::parse_json(data);
    if (!chunk || !chunk->is_object()) {
      problem_ = "a stream chunk is not JSON: " + std::string(data.substr(0, 200));
      return false;
    }
    if (chunk->contains("error")) {  // an error reported inside the stream
      problem_ =
          (*chunk)["error"].is_object() ? (*chunk)["error"].value("message", "error") : "error";
      return false;
    }
    if (auto u = chunk->find("usage"); u != chunk->end() && u->is_object()) usage(*u);
    auto choices = chunk->find("choices");
    if (choices == chunk->end() || !choices->is_array() || choices->empty()) return true;
    const Json& choice = (*choices)[0];
    if (auto f = choice.find("finish_reason"); f != choice.end() && f->is_string())
      reply_.finish_reason = f->get<std::string>();
    const auto d = choice.find("delta");
    if (d == choice.end() || !d->is_object()) return true;
    if (auto t = d->find("reasoning_content"); t != d->end() && t->is_string())
      reply_.reasoning_content += t->get<std::string>();
    if (auto t = d->find("content"); t != d->end() && t->is_string())
      reply_.content += t->get<std::string>();
    if (auto calls = d->find("tool_calls"); calls != d->end() && calls->is_array())
      for (const Json& c : *calls) tool_call_delta(c);
    return true;
  }

  // The answer, or what went wrong: a stream that ended before it said it was done was dropped.
  ModelResult finish(const std::vector<Json>& tools) {
    if (!problem_.empty())
      return tl::unexpected(ModelFailure{FailureKind::Protocol, 0, std::nullopt, problem_});
    if (!done_ && reply_.finish_reason.empty())
      return tl::unexpected(ModelFailure{FailureKind::Dropped, 0, std::nullopt,
                                         "the stream ended before the answer did"});
    for (std::size_t i = 0; i < reply_.tool_calls.size(); ++i)
      if (reply_.tool_calls[i].id.empty()) reply_.tool_calls[i].id = "call_" + std::to_string(i);
    check_calls(reply_.tool_calls, tools);
    return std::move(reply_);
  }

 private:
  void usage(const Json& u) {
    reply_.usage.prompt_tokens = int_at(u, "prompt_tokens");
    reply_.usage.completion_tokens = int_at(u, "completion_tokens");
    // DeepSeek: prompt_cache_hit_tokens; OpenAI, vLLM, SGLang: prompt_tokens_details.cached_tokens.
    std::int64_t cached = int_at(u, "prompt_cache_hit_tokens");
    if (auto details = u.find("prompt_tokens_details"); details != u.end() && details->is_object())
      cached = std::max(cached, int_at(*details, "cached_tokens"));
    reply_.usage.cached_tokens = cached;
  }

  // The first delta of a call carries index, id, type and name with empty arguments; later ones
  // carry argument fragments whose concatenation is the JSON text.
  void tool_call_delta(const Json& c) {
    const std::size_t index = c.contains("index") && c["index"].is_number_unsigned()
                                  ? c["index"].get<std::size_t>()
                                  : reply_.tool_calls.size();
    if (index > 1024) return;
    if (reply_.tool_calls.size() <= index) reply_.tool_calls.resize(index + 1);
    toolcall::ParsedToolCall& call = reply_.tool_calls[index];
    if (auto id = c.find("id"); id != c.end() && id->is_string()) call.id = id->get<std::string>();
    if (auto f = c.find("function"); f != c.end() && f->is_object()) {
      if (auto n = f->find("name"); n != f->end() && n->is_string())
        call.name += n->get<std::string>();
      if (auto a = f->find("arguments"); a != f->end() && a->is_string())
        call.arguments += a->get<std::string>();
    }
  }

  ModelReply reply_;
  bool done_ = false;
  std::string problem_;
};

class OpenAiBackend final : public HostedBackend {
 public:
  using HostedBackend::HostedBackend;
  BackendKind backend() const override { return BackendKind::OpenAi; }

  boost::asio::awaitable<ModelResult> complete(ModelRequest request) override {
    Headers headers{};
    if (!key_.empty()) headers.emplace_back("Authorization", "Bearer " + key_);
    Assembly assembly;
    const OnEvent on_event = [&](std::string_view, std::string_view data) {
      return assembly.add(data);
    };
    // Arguments named, not temporaries in the co_await expression (GCC 12 destroys those twice).
    std::string target = "/chat/completions",
                body = request_json(request, config_.model)
                           .dump(-1, ' ', false, Json::error_handler_t::replace);
    auto sent =
        co_await post_events(std::move(target), std::move(headers), std::move(body), on_event);
    if (!sent) co_return tl::unexpected(sent.error());
    co_return assembly.finish(request.tools);
  }
};

}  // namespace

std::unique_ptr<ModelBackend> make_openai_backend(const ModelConfig& config, Endpoint endpoint,
                                                  std::string api_key,
                                                  boost::asio::any_io_executor executor) {
  return std::make_unique<OpenAiBackend>(config, std::move(endpoint), std::move(api_key),
                                         std::move(executor));
}

}  // namespace warren::orchestrator::detail
