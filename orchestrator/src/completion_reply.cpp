#include "completion_reply.hpp"

namespace warren::orchestrator::detail {

toolcall::Mode mode_of(Thinking thinking) {
  return thinking == Thinking::Off ? toolcall::Mode::Chat : toolcall::Mode::Thinking;
}

Result<std::string> encode_prompt(const toolcall::Codec& codec, const ModelRequest& request) {
  toolcall::ChatRequest chat{request.messages, request.tools};
  toolcall::EncodeOptions encode{
      .mode = mode_of(request.thinking),
      .effort = request.thinking == Thinking::Max ? toolcall::Effort::Max : toolcall::Effort::None};
  auto prompt = codec.encode(chat, encode);
  if (!prompt) return tl::unexpected(Error{prompt.error().message});
  return *prompt;
}

ModelReply reply_from_completion(const toolcall::Codec& codec, std::string_view completion,
                                 const ModelRequest& request, std::size_t id_seed,
                                 std::size_t chunk_bytes) {
  auto tools = toolcall::ToolSet::from_json(Json(request.tools));
  toolcall::ParserOptions options{.mode = mode_of(request.thinking), .lenient = true};
  if (tools) options.tools = std::make_shared<const toolcall::ToolSet>(std::move(*tools));
  options.id_seed = id_seed;
  toolcall::MessageBuilder built;
  auto parser = codec.make_parser(options, built);
  toolcall::feed_all(*parser, completion, chunk_bytes);

  ModelReply reply;
  toolcall::ParsedMessage& m = built.message();
  reply.content = std::move(m.content);
  reply.reasoning_content = std::move(m.reasoning_content);
  reply.tool_calls = std::move(m.tool_calls);
  reply.finish_reason = built.finish_reason();
  for (const toolcall::Warning& w : m.warnings) reply.warnings.push_back(w.message);
  if (built.error()) {  // even lenient parsing gave up: the text goes back as plain content
    reply.content = std::string(completion);
    reply.tool_calls.clear();
    reply.warnings.push_back("unreadable completion: " + built.error()->message);
  }
  return reply;
}

}  // namespace warren::orchestrator::detail
