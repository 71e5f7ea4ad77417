// warren/toolcall: the DeepSeek prompt format and its special-token XML tool calls (DSML).
//
// Two directions, one dialect table per model generation:
//   encode: an OpenAI-format chat request -> the exact prompt string the model was trained on;
//   parse:  the model's completion text -> reasoning, content and tool calls, either all at once or
//           incrementally as a stream of events (input may be cut at any byte).
// Facts: docs/dsml.md and the official test vectors in tests/toolcall/data/.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace warren::toolcall {

// Key order matters: the prompt renders JSON objects in the order they were given.
using Json = nlohmann::ordered_json;

// ---------------------------------------------------------------------------------------------
// Errors as values
// ---------------------------------------------------------------------------------------------

struct Error {
  std::string message;                  // one line a user can act on
  std::optional<std::uint64_t> offset;  // byte offset in the input, where there is one
};

template <class T>
using Result = tl::expected<T, Error>;

// ---------------------------------------------------------------------------------------------
// Conversations
// ---------------------------------------------------------------------------------------------

enum class Format { V4 };  // DSML dialects; V3.2 (`function_calls`) and V3.1 are added beside V4
enum class Mode { Thinking, Chat };
enum class Effort { None, High, Max };  // `High` renders like `None`; `Max` adds a fixed paragraph

enum class Role { System, User, Assistant, Tool, Developer, LatestReminder };

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text of an object
};

struct Message {
  Role role = Role::User;
  std::string content;
  std::optional<std::string> reasoning_content;
  std::vector<ToolCall> tool_calls;     // assistant turns
  std::string tool_call_id;             // tool results
  std::vector<Json> tools;              // function objects {name, description, parameters}
  std::optional<Json> response_format;  // system and developer messages
  std::optional<std::string> task;      // quick-instruction task: action, query, authority, ...
  bool without_eos = false;             // assistant prefill: leave the turn open
};

struct ChatRequest {
  std::vector<Message> messages;
  std::vector<Json> tools;  // request-level tools: they go on the first system message
};

struct EncodeOptions {
  Mode mode = Mode::Thinking;
  Effort effort = Effort::None;
  bool drop_thinking = true;  // drop reasoning before the last user turn (never when tools exist)
};

// Parses untrusted JSON text: refuses nesting deeper than 512 levels (copies of deeper values
// would exhaust the stack) and reports where invalid text goes wrong.
Result<Json> parse_json(std::string_view text);

// `text` with every byte that does not begin a well-formed UTF-8 sequence (RFC 3629) replaced by
// U+FFFD, as a decoder shows it. Tool output, task files and model text reach prompts, JSON and
// the store through it: a command's output cut inside a character, or a Latin-1 file, is still
// text there.
std::string valid_utf8(std::string_view text);
// How many bytes at the end of `text` begin a UTF-8 sequence not complete yet (0-3): what a
// reader of a stream (a model's tokens, one at a time) holds back until the rest arrives.
std::size_t incomplete_utf8_tail(std::string_view text);

// Reads an OpenAI Chat Completions request ({messages, tools}) or a bare message array.
Result<ChatRequest> chat_request_from_json(const Json& request);

// ---------------------------------------------------------------------------------------------
// Tool schemas
// ---------------------------------------------------------------------------------------------

// A set of tools the model may call, indexed by name, with their JSON schemas. Checks a call's
// arguments against the schema's type, required, enum, properties, items and
// additionalProperties, and reports every problem it finds as one line each.
class ToolSet {
 public:
  // `tools`: OpenAI tool objects ({type: function, function: {...}}) or bare function objects.
  static Result<ToolSet> from_json(const Json& tools);

  bool empty() const { return tools_.empty(); }
  const Json* schema_for(std::string_view name) const;  // the `parameters` object, or null
  bool contains(std::string_view name) const;
  std::vector<std::string> check_arguments(std::string_view name, const Json& arguments) const;

 private:
  std::vector<std::pair<std::string, Json>> tools_;  // (name, parameters)
};

// ---------------------------------------------------------------------------------------------
// Parsing completions
// ---------------------------------------------------------------------------------------------

struct Warning {
  std::string message;
  std::uint64_t offset = 0;
};

struct ParsedToolCall {
  std::string id;
  std::string name;
  std::string arguments;            // JSON object text (concatenation of the argument deltas)
  std::vector<std::string> errors;  // per-call problems to hand back to the model; empty if none
};

struct ParsedMessage {
  std::string content;
  std::string reasoning_content;
  std::vector<ParsedToolCall> tool_calls;
  std::vector<Warning> warnings;
};

enum class EventKind {
  ReasoningDelta,  // text
  ContentDelta,    // text
  ToolCallBegin,   // index, id, name
  ArgumentsDelta,  // index, text: a fragment of the arguments JSON
  ToolCallEnd,     // index, errors
  Warning,         // text, offset: a recovery made in lenient mode
  Done,            // text: "stop" or "tool_calls"
  Error,           // text, offset: input the parser cannot accept; nothing follows
};

// Views are valid only during the callback.
struct Event {
  EventKind kind;
  std::string_view text;
  int index = -1;
  std::string_view id;
  std::string_view name;
  std::span<const std::string> errors;
  std::uint64_t offset = 0;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(const Event& event) = 0;
};

struct ParserOptions {
  Mode mode = Mode::Thinking;
  bool lenient = false;  // recover the malformed shapes real deployments produce, with warnings
  std::shared_ptr<const ToolSet> tools;  // when set: unknown tools and schema violations per call
  std::uint64_t id_seed = 0;             // tool-call ids: 0 draws a random seed
};

// Incremental parser. feed() accepts the completion in pieces cut anywhere; finish() marks the
// end. Events go to the sink as soon as they are certain: no byte of a possible marker is ever
// emitted as text before the marker is ruled out.
class StreamParser {
 public:
  virtual ~StreamParser() = default;
  virtual void feed(std::string_view bytes) = 0;
  virtual void finish() = 0;
  virtual bool failed() const = 0;
};

// Collects events into a ParsedMessage (the whole-text parse is the stream parser plus this).
class MessageBuilder final : public EventSink {
 public:
  void on_event(const Event& event) override;
  bool done() const { return done_; }
  const std::optional<toolcall::Error>& error() const { return error_; }
  const std::string& finish_reason() const { return finish_reason_; }
  ParsedMessage& message() { return message_; }

 private:
  ParsedMessage message_;
  std::optional<toolcall::Error> error_;
  std::string finish_reason_;
  bool done_ = false;
};

// ---------------------------------------------------------------------------------------------
// Codecs: one per dialect
// ---------------------------------------------------------------------------------------------

class Codec {
 public:
  virtual ~Codec() = default;
  virtual Format format() const = 0;
  virtual Result<std::string> encode(const ChatRequest& request,
                                     const EncodeOptions& options) const = 0;
  virtual std::unique_ptr<StreamParser> make_parser(const ParserOptions& options,
                                                    EventSink& sink) const = 0;
  // An assistant turn as the model writes it in thinking mode, what follows the prompt: its
  // reasoning, content and tool calls (arguments as JSON text), without the end of sentence.
  // A scripted model (Warren's oracle agent) answers with these.
  virtual Result<std::string> render_completion(const Message& assistant) const = 0;
};

std::unique_ptr<Codec> make_codec(Format format);

// Feeds `text` in pieces of `chunk_bytes` (0: in one piece) until the parser fails, then
// finishes it.
void feed_all(StreamParser& parser, std::string_view text, std::size_t chunk_bytes = 0);

// Whole-text parse: the stream parser fed in one piece (or `chunk_bytes` at a time).
Result<ParsedMessage> parse_completion(const Codec& codec, std::string_view completion,
                                       const ParserOptions& options, std::size_t chunk_bytes = 0);

// {role, content, reasoning_content, tool_calls: [{id, type, function: {name, arguments}}],
//  warnings}; a call with problems carries "errors".
Json to_json(const ParsedMessage& message);

// The OpenAI streaming shape of one event (one JSON line of `warren toolcall parse --events`).
Json event_to_json(const Event& event);

}  // namespace warren::toolcall
