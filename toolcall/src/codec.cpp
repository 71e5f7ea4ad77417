// The codec registry and the pieces every dialect shares: collecting events into a message, and
// the JSON shapes the CLI and the orchestrator print.
#include "dsml_parser.hpp"
#include "python_json.hpp"
#include "v4_encoder.hpp"
#include "v4_tokens.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall {

namespace {

constexpr detail::DsmlDialect kV4Dialect{
    detail::v4::kBos,      detail::v4::kEos,  detail::v4::kThinkStart,
    detail::v4::kThinkEnd, detail::v4::kDsml, detail::v4::kBlockName,
};

class V4Codec final : public Codec {
 public:
  Format format() const override { return Format::V4; }
  Result<std::string> encode(const ChatRequest& request,
                             const EncodeOptions& options) const override {
    return detail::encode_v4(request, options);
  }
  std::unique_ptr<StreamParser> make_parser(const ParserOptions& options,
                                            EventSink& sink) const override {
    return detail::make_dsml_parser(kV4Dialect, options, sink);
  }
  Result<std::string> render_completion(const Message& assistant) const override {
    return detail::encode_v4_completion(assistant);
  }
};

}  // namespace

std::unique_ptr<Codec> make_codec(Format format) {
  switch (format) {
    case Format::V4:
      return std::make_unique<V4Codec>();
  }
  return nullptr;
}

void MessageBuilder::on_event(const Event& e) {
  switch (e.kind) {
    case EventKind::ReasoningDelta:
      message_.reasoning_content.append(e.text);
      break;
    case EventKind::ContentDelta:
      message_.content.append(e.text);
      break;
    case EventKind::ToolCallBegin:
      message_.tool_calls.push_back({std::string(e.id), std::string(e.name), {}, {}});
      break;
    case EventKind::ArgumentsDelta:
      message_.tool_calls.back().arguments.append(e.text);
      break;
    case EventKind::ToolCallEnd:
      message_.tool_calls.back().errors.assign(e.errors.begin(), e.errors.end());
      break;
    case EventKind::Warning:
      message_.warnings.push_back({std::string(e.text), e.offset});
      break;
    case EventKind::Done:
      done_ = true;
      finish_reason_ = e.text;
      break;
    case EventKind::Error:
      error_ = toolcall::Error{std::string(e.text), e.offset};
      break;
  }
}

void feed_all(StreamParser& parser, std::string_view text, std::size_t chunk_bytes) {
  if (chunk_bytes == 0) chunk_bytes = text.size() + 1;
  for (std::size_t at = 0; at < text.size() && !parser.failed(); at += chunk_bytes)
    parser.feed(text.substr(at, chunk_bytes));
  parser.finish();
}

Result<ParsedMessage> parse_completion(const Codec& codec, std::string_view completion,
                                       const ParserOptions& options, std::size_t chunk_bytes) {
  MessageBuilder builder;
  auto parser = codec.make_parser(options, builder);
  feed_all(*parser, completion, chunk_bytes);
  if (builder.error()) return tl::unexpected(*builder.error());
  return std::move(builder.message());
}

Json to_json(const ParsedMessage& m) {
  Json calls = Json::array();
  for (const ParsedToolCall& c : m.tool_calls) {
    Json call = {{"id", c.id},
                 {"type", "function"},
                 {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
    if (!c.errors.empty()) call["errors"] = c.errors;
    calls.push_back(std::move(call));
  }
  Json warnings = Json::array();
  for (const Warning& w : m.warnings)
    warnings.push_back({{"message", w.message}, {"offset", w.offset}});
  return {{"role", "assistant"},
          {"content", m.content},
          {"reasoning_content", m.reasoning_content},
          {"tool_calls", std::move(calls)},
          {"warnings", std::move(warnings)}};
}

Json event_to_json(const Event& e) {
  auto delta = [](Json d) { return Json{{"delta", std::move(d)}}; };
  switch (e.kind) {
    case EventKind::ReasoningDelta:
      return delta({{"reasoning_content", e.text}});
    case EventKind::ContentDelta:
      return delta({{"content", e.text}});
    case EventKind::ToolCallBegin:
      return delta({{"tool_calls",
                     {{{"index", e.index},
                       {"id", e.id},
                       {"type", "function"},
                       {"function", {{"name", e.name}, {"arguments", ""}}}}}}});
    case EventKind::ArgumentsDelta:
      return delta({{"tool_calls", {{{"index", e.index}, {"function", {{"arguments", e.text}}}}}}});
    case EventKind::ToolCallEnd: {
      Json j = {{"event", "tool_call_end"}, {"index", e.index}};
      if (!e.errors.empty())
        j["errors"] = std::vector<std::string>(e.errors.begin(), e.errors.end());
      return j;
    }
    case EventKind::Warning:
      return {{"event", "warning"}, {"message", e.text}, {"offset", e.offset}};
    case EventKind::Done:
      return {{"event", "done"}, {"finish_reason", e.text}};
    case EventKind::Error:
      return {{"event", "error"}, {"message", e.text}, {"offset", e.offset}};
  }
  return {};
}

}  // namespace warren::toolcall
