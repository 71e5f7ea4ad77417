// Anthropic Messages, streamed (DeepSeek's Anthropic-compatible endpoint): thinking blocks,
// tool_use and tool_result blocks, output_config.effort.
//
// Roles must alternate, so a step's tool results (and a note after them) form one user message
// of tool_result blocks; earlier assistant turns carry their thinking back as a thinking block.
#include "http_backends.hpp"

namespace warren::orchestrator::detail {

namespace {

constexpr const char* kApiVersion = "2023-06-01";

Json input_object(const std::string& arguments) {
  auto parsed = toolcall::parse_json(arguments);
  return parsed && parsed->is_object() ? *parsed : Json::object();
}

// Appends `block` to the last message if it has `role`, else starts a message.
void add_block(Json& messages, const char* role, Json block) {
  if (messages.empty() || messages.back()["role"] != role)
    messages.push_back({{"role", role}, {"content", Json::array()}});
  messages.back()["content"].push_back(std::move(block));
}

Json request_json(const ModelRequest& r, const std::string& model) {
  std::string system;
  Json messages = Json::array();
  for (const toolcall::Message& m : r.messages) {
    switch (m.role) {
      case toolcall::Role::System:
        system += (system.empty() ? "" : "\n\n") + m.content;
        break;
      case toolcall::Role::Assistant:
        if (m.reasoning_content && !m.reasoning_content->empty())
          add_block(messages, "assistant",
                    {{"type", "thinking"}, {"thinking", *m.reasoning_content}});
        if (!m.content.empty())
          add_block(messages, "assistant", {{"type", "text"}, {"text", m.content}});
        for (const toolcall::ToolCall& c : m.tool_calls)
          add_block(messages, "assistant",
                    {{"type", "tool_use"},
                     {"id", c.id},
                     {"name", c.name},
                     {"input", input_object(c.arguments)}});
        if (messages.empty() || messages.back()["role"] != "assistant")  // an empty turn
          add_block(messages, "assistant", {{"type", "text"}, {"text", ""}});
        break;
      case toolcall::Role::Tool:
        add_block(
            messages, "user",
            {{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}});
        break;
      default:
        add_block(messages, "user", {{"type", "text"}, {"text", m.content}});
    }
  }
  Json body = {{"model", model},
               {"max_tokens", r.max_output_tokens},
               {"messages", messages},
               {"stream", true}};
  if (!system.empty()) body["system"] = system;
  if (!r.tools.empty()) {
    Json tools = Json::array();
    for (const Json& f : r.tools)
      tools.push_back({{"name", f.value("name", "")},
                       {"description", f.value("description", "")},
                       {"input_schema", f.value("parameters", Json::object())}});
    body["tools"] = tools;
  }
  body["thinking"] = {{"type", r.thinking == Thinking::Off ? "disabled" : "enabled"}};
  if (r.thinking != Thinking::Off)
    body["output_config"] = {{"effort", r.thinking == Thinking::Max ? "max" : "high"}};
  return body;
}

// Assembles one streamed answer from its events.
class Assembly {
 public:
  bool add(std::string_view event, std::string_view data) {
    if (event == "ping") return true;
    auto json = toolcall::parse_json(data);
    if (!json || !json->is_object()) {
      failure_ = ModelFailure{FailureKind::Protocol, 0, std::nullopt,
                              "an event is not JSON: " + std::string(data.substr(0, 200))};
      return false;
    }
    const std::string type = json->value("type", std::string(event));
    if (type == "message_start") {
      const Json& u = (*json)["message"].value("usage", Json::object());
      // input_tokens leaves out what the cache served; the prompt is all of it.
      reply_.usage.cached_tokens = int_at(u, "cache_read_input_tokens");
      reply_.usage.prompt_tokens = int_at(u, "input_tokens") + reply_.usage.cached_tokens +
                                   int_at(u, "cache_creation_input_tokens");
    } else if (type == "content_block_start") {
      const Json& block = (*json)["content_block"];
      kinds_.push_back(block.value("type", ""));
      calls_.push_back(-1);
      if (kinds_.back() == "tool_use") {
        calls_.back() = static_cast<int>(reply_.tool_calls.size());
        reply_.tool_calls.push_back({block.value("id", ""), block.value("name", ""), "", {}});
      }
    } else if (type == "content_block_delta") {
      const std::size_t index = json->value("index", kinds_.empty() ? 0 : kinds_.size() - 1);
      const Json& d = (*json)["delta"];
      const std::string kind = d.value("type", "");
      if (kind == "text_delta")
        reply_.content += d.value("text", "");
      else if (kind == "thinking_delta")
        reply_.reasoning_content += d.value("thinking", "");
      else if (kind == "input_json_delta" && index < calls_.size() && calls_[index] >= 0)
        reply_.tool_calls[static_cast<std::size_t>(calls_[index])].arguments +=
            d.value("partial_json", "");
    } else if (type == "message_delta") {
      reply_.finish_reason = (*json)["delta"].value("stop_reason", "");
      reply_.usage.completion_tokens =
          int_at((*json).value("usage", Json::object()), "output_tokens");
    } else if (type == "message_stop") {
      done_ = true;
      return false;
    } else if (type == "error") {
      const Json& e = (*json)["error"];
      const std::string kind = e.value("type", "");
      failure_ = ModelFailure{kind == "overloaded_error"   ? FailureKind::Server
                              : kind == "rate_limit_error" ? FailureKind::RateLimited
                                                           : FailureKind::Protocol,
                              0, std::nullopt, e.value("message", kind)};
      return false;
    }
    return true;
  }

  ModelResult finish(const std::vector<Json>& tools) {
    if (failure_) return tl::unexpected(*failure_);
    if (!done_)
      return tl::unexpected(ModelFailure{FailureKind::Dropped, 0, std::nullopt,
                                         "the stream ended before the answer did"});
    if (reply_.finish_reason == "tool_use")
      reply_.finish_reason = "tool_calls";
    else if (reply_.finish_reason == "end_turn")
      reply_.finish_reason = "stop";
    check_calls(reply_.tool_calls, tools);
    return std::move(reply_);
  }

 private:
  ModelReply reply_;
  std::vector<std::string> kinds_;  // per content block
  std::vector<int> calls_;          // per content block: its tool call, or -1
  std::optional<ModelFailure> failure_;
  bool done_ = false;
};

class AnthropicBackend final : public HostedBackend {
 public:
  using HostedBackend::HostedBackend;
  BackendKind backend() const override { return BackendKind::Anthropic; }

  boost::asio::awaitable<ModelResult> complete(ModelRequest request) override {
    Headers headers{{"anthropic-version", kApiVersion}};
    if (!key_.empty()) headers.emplace_back("x-api-key", key_);
    Assembly assembly;
    const OnEvent on_event = [&](std::string_view event, std::string_view data) {
      return assembly.add(event, data);
    };
    // Arguments named, not temporaries in the co_await expression (GCC 12 destroys those twice).
    std::string target = "/v1/messages",
                body = request_json(request, config_.model)
                           .dump(-1, ' ', false, Json::error_handler_t::replace);
    auto sent =
        co_await post_events(std::move(target), std::move(headers), std::move(body), on_event);
    if (!sent) co_return tl::unexpected(sent.error());
    co_return assembly.finish(request.tools);
  }
};

}  // namespace

std::unique_ptr<ModelBackend> make_anthropic_backend(const ModelConfig& config, Endpoint endpoint,
                                                     std::string api_key,
                                                     boost::asio::any_io_executor executor) {
  return std::make_unique<AnthropicBackend>(config, std::move(endpoint), std::move(api_key),
                                            std::move(executor));
}

}  // namespace warren::orchestrator::detail
