#include "toolcall_commands.hpp"

#include <iostream>
#include <memory>

#include "io.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::cli {

namespace {

namespace tc = warren::toolcall;

int fail(const std::string& command, const std::string& message) {
  std::cerr << "warren toolcall " << command << ": " << message << "\n";
  return 1;
}

std::string dump(const tc::Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, tc::Json::error_handler_t::replace);
}

tc::Mode mode_from(const std::string& name) {
  return name == "chat" ? tc::Mode::Chat : tc::Mode::Thinking;
}

struct EncodeFlags {
  std::string mode = "thinking";
  std::string effort;
  std::string input;
  bool keep_thinking = false;
  bool json = false;
};

int run_encode(const EncodeFlags& f) {
  std::string error;
  auto text = read_input(f.input, error);
  if (!text) return fail("encode", error);
  auto request = tc::parse_json(*text);
  if (!request) return fail("encode", "the request is not usable: " + request.error().message);
  auto parsed = tc::chat_request_from_json(*request);
  if (!parsed) return fail("encode", parsed.error().message);
  tc::EncodeOptions options;
  options.mode = mode_from(f.mode);
  options.effort = f.effort == "max"    ? tc::Effort::Max
                   : f.effort == "high" ? tc::Effort::High
                                        : tc::Effort::None;
  options.drop_thinking = !f.keep_thinking;
  auto codec = tc::make_codec(tc::Format::V4);
  auto prompt = codec->encode(*parsed, options);
  if (!prompt) return fail("encode", prompt.error().message);
  if (f.json) {
    write_stdout(dump(tc::Json{{"prompt", *prompt}, {"bytes", prompt->size()}}) + "\n");
  } else {
    write_stdout(*prompt);
  }
  return 0;
}

struct ParseFlags {
  std::string mode = "thinking";
  std::string tools;
  std::string input;
  bool lenient = false;
  bool events = false;
  std::size_t chunk_bytes = 0;
  std::uint64_t seed = 0;
};

// Prints each event as one JSON line as it arrives.
class EventPrinter final : public tc::EventSink {
 public:
  explicit EventPrinter(tc::MessageBuilder& builder) : builder_(builder) {}
  void on_event(const tc::Event& e) override {
    builder_.on_event(e);
    std::string line = dump(tc::event_to_json(e));
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
  }

 private:
  tc::MessageBuilder& builder_;
};

int run_parse(const ParseFlags& f) {
  std::string error;
  tc::ParserOptions options;
  options.mode = mode_from(f.mode);
  options.lenient = f.lenient;
  options.id_seed = f.seed;
  if (!f.tools.empty()) {
    auto text = read_input(f.tools, error);
    if (!text) return fail("parse", error);
    auto parsed = tc::parse_json(*text);
    if (!parsed) return fail("parse", f.tools + ": " + parsed.error().message);
    const tc::Json& tools = *parsed;
    // By reference: copying a JSON subtree recurses, and the file is not trusted.
    const tc::Json& list = tools.is_object() && tools.contains("tools") ? tools["tools"] : tools;
    auto set = tc::ToolSet::from_json(list);
    if (!set) return fail("parse", f.tools + ": " + set.error().message);
    options.tools = std::make_shared<const tc::ToolSet>(std::move(*set));
  }
  auto completion = read_input(f.input, error);
  if (!completion) return fail("parse", error);

  auto codec = tc::make_codec(tc::Format::V4);
  tc::MessageBuilder builder;
  EventPrinter printer(builder);
  tc::EventSink& sink = f.events ? static_cast<tc::EventSink&>(printer) : builder;
  auto parser = codec->make_parser(options, sink);
  tc::feed_all(*parser, *completion, f.chunk_bytes);
  std::fflush(stdout);
  if (builder.error()) return fail("parse", builder.error()->message);
  if (!f.events) write_stdout(dump(tc::to_json(builder.message()), 2) + "\n");
  return 0;
}

}  // namespace

void add_toolcall_commands(CLI::App& app, int& exit_code) {
  CLI::App* toolcall =
      app.add_subcommand("toolcall", "DeepSeek-V4 DSML: encode prompts, parse completions");
  toolcall->require_subcommand(1);

  auto encode_flags = std::make_shared<EncodeFlags>();
  CLI::App* encode = toolcall->add_subcommand(
      "encode", "Print the prompt for an OpenAI-format chat request read from stdin");
  encode->add_option("--mode", encode_flags->mode, "thinking or chat")
      ->check(CLI::IsMember({"thinking", "chat"}));
  encode->add_option("--effort", encode_flags->effort, "reasoning effort: high or max")
      ->check(CLI::IsMember({"high", "max"}));
  encode->add_option("--input", encode_flags->input, "read the request from FILE, not stdin");
  encode->add_flag("--keep-thinking", encode_flags->keep_thinking,
                   "keep the reasoning of every earlier turn");
  encode->add_flag("--json", encode_flags->json, "print {prompt, bytes} as JSON");
  encode->callback([encode_flags, &exit_code] { exit_code = run_encode(*encode_flags); });

  auto parse_flags = std::make_shared<ParseFlags>();
  CLI::App* parse = toolcall->add_subcommand(
      "parse", "Parse a completion read from stdin into an assistant message (JSON)");
  parse->add_option("--mode", parse_flags->mode, "thinking or chat")
      ->check(CLI::IsMember({"thinking", "chat"}));
  parse->add_flag("--lenient", parse_flags->lenient,
                  "recover malformed tool calls seen in real deployments, with warnings");
  parse->add_option("--tools", parse_flags->tools, "tools JSON: check calls against these schemas");
  parse
      ->add_option("--chunk-bytes", parse_flags->chunk_bytes,
                   "feed the streaming parser N bytes at a time")
      ->check(CLI::PositiveNumber);
  parse->add_flag("--events", parse_flags->events, "print the event stream as JSON lines");
  parse->add_option("--seed", parse_flags->seed, "seed for tool-call ids (default: random)");
  parse->add_option("--input", parse_flags->input, "read the completion from FILE, not stdin");
  parse->callback([parse_flags, &exit_code] { exit_code = run_parse(*parse_flags); });
}

}  // namespace warren::cli
