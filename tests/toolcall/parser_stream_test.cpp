// Streaming: input cut at any byte gives the same message as the whole text, and no partial marker
// ever reaches a text event.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

using testing::must_parse;
using testing::options;

// Records every event with copies of its views.
struct Recorded {
  EventKind kind;
  std::string text;
  int index;
  std::string id, name;
};

class Recorder final : public EventSink {
 public:
  void on_event(const Event& e) override {
    events.push_back(
        {e.kind, std::string(e.text), e.index, std::string(e.id), std::string(e.name)});
    json_lines.push_back(event_to_json(e));
  }
  std::string text_of(EventKind kind) const {
    std::string out;
    for (const auto& e : events)
      if (e.kind == kind) out += e.text;
    return out;
  }
  std::vector<Recorded> events;
  std::vector<Json> json_lines;
};

Recorder stream(const std::vector<std::string>& chunks, const ParserOptions& o) {
  Recorder r;
  auto parser = make_codec(Format::V4)->make_parser(o, r);
  for (const auto& c : chunks) parser->feed(c);
  parser->finish();
  return r;
}

const std::string kCompletion =
    "Plan: run <ls> then 中文 check.</think>On it 🙂\n\n<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"bash\">\n"
    "<｜DSML｜parameter name=\"command\" string=\"true\">echo \"<｜end▁of\" "
    "中</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"n\" string=\"false\">[1, {\"a\": \"b\"}]</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"submit\">\n\n</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls><｜end▁of▁sentence｜>";

TEST(StreamParser, EverySingleCutPointGivesTheWholeTextResult) {
  const Json whole = to_json(must_parse(kCompletion, options(Mode::Thinking)));
  for (std::size_t cut = 0; cut <= kCompletion.size(); ++cut) {
    const Recorder r =
        stream({kCompletion.substr(0, cut), kCompletion.substr(cut)}, options(Mode::Thinking));
    MessageBuilder b;
    for (const auto& e : r.events) {
      Event ev{e.kind, e.text, e.index, e.id, e.name};
      b.on_event(ev);
    }
    ASSERT_FALSE(b.error()) << "cut at " << cut << ": " << b.error()->message;
    ASSERT_EQ(to_json(b.message()), whole) << "cut at " << cut;
  }
}

TEST(StreamParser, EveryChunkSizeGivesTheWholeTextResult) {
  for (bool lenient : {false, true}) {
    const Json whole = to_json(must_parse(kCompletion, options(Mode::Thinking, lenient)));
    for (std::size_t chunk = 1; chunk <= 64; ++chunk)
      ASSERT_EQ(to_json(must_parse(kCompletion, options(Mode::Thinking, lenient), chunk)), whole)
          << "chunk " << chunk;
  }
}

TEST(StreamParser, TextEventsNeverHoldPartialMarkersOrCutCharacters) {
  const Recorder r = stream(
      [] {
        std::vector<std::string> bytes;
        for (char c : kCompletion) bytes.emplace_back(1, c);
        return bytes;
      }(),
      options(Mode::Thinking));
  for (const auto& e : r.events) {
    if (e.kind != EventKind::ContentDelta && e.kind != EventKind::ReasoningDelta) continue;
    EXPECT_EQ(e.text.find("｜"), std::string::npos) << e.text;
    EXPECT_EQ(e.text.find("</"), std::string::npos) << e.text;
    // Each delta is whole UTF-8 on its own: it survives a JSON round trip.
    EXPECT_TRUE(Json::accept(Json(e.text).dump(-1, ' ', false, Json::error_handler_t::strict)))
        << e.text;
    const unsigned char last = static_cast<unsigned char>(e.text.back());
    EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80) << "delta ends in a lead byte";
  }
  EXPECT_EQ(r.text_of(EventKind::ReasoningDelta), "Plan: run <ls> then 中文 check.");
  EXPECT_EQ(r.text_of(EventKind::ContentDelta), "On it 🙂");
}

// Deployment failure: DSML markup leaking into content when the start marker is split.
TEST(StreamParser, SplitBlockStartDoesNotLeakIntoContent) {
  for (const std::string& split :
       {std::string("Hello\n"), std::string("Hello\n\n"), std::string("Hello\n\n<"),
        std::string("Hello\n\n<｜DS"), std::string("Hello\n\n<\xEF\xBD"),
        std::string("Hello\n\n<｜DSML｜tool_ca")}) {
    const std::string rest = kCompletion.substr(kCompletion.find("\n\n<｜DSML") + split.size() - 5);
    const Recorder r = stream({split, rest}, options(Mode::Chat));
    EXPECT_EQ(r.text_of(EventKind::ContentDelta), "Hello") << split;
    int calls = 0;
    for (const auto& e : r.events) calls += e.kind == EventKind::ToolCallBegin;
    EXPECT_EQ(calls, 2) << split;
  }
}

// Deployment failure: tool calls dropped when the stream ends in two chunks, and a trailing '<'
// flushed as content.
TEST(StreamParser, StreamEndingInTwoChunksKeepsCallsAndNoTrailingAngle) {
  const std::string body = kCompletion.substr(kCompletion.find("</think>") + 8);
  const std::string end = "</｜DSML｜tool_calls><｜end▁of▁sentence｜>";
  const std::string head = body.substr(0, body.size() - end.size());
  for (std::size_t cut = 0; cut <= end.size(); ++cut) {
    const Recorder r = stream({head + end.substr(0, cut), end.substr(cut)}, options(Mode::Chat));
    EXPECT_EQ(r.text_of(EventKind::ContentDelta), "On it 🙂");
    ASSERT_FALSE(r.events.empty());
    EXPECT_EQ(r.events.back().kind, EventKind::Done);
    EXPECT_EQ(r.events.back().text, "tool_calls");
  }
  const Recorder angle = stream({"Hi <", "｜end▁of▁sentence｜>"}, options(Mode::Chat));
  EXPECT_EQ(angle.text_of(EventKind::ContentDelta), "Hi ");
  const Recorder real_angle = stream({"1 <", " 2<", "｜end▁of▁sentence｜>"}, options(Mode::Chat));
  EXPECT_EQ(real_angle.text_of(EventKind::ContentDelta), "1 < 2");
  const Recorder last_angle = stream({"a <"}, options(Mode::Chat, /*lenient=*/true));
  EXPECT_EQ(last_angle.text_of(EventKind::ContentDelta), "a <");
}

// The OpenAI streaming shape: the first delta of a call carries index, id, type, name and empty
// arguments; later deltas only argument fragments, whose concatenation is valid JSON.
TEST(StreamParser, OpenAiDeltaShape) {
  const Recorder r = stream({kCompletion}, options(Mode::Thinking));
  std::vector<std::string> args(2);
  bool saw_first[2] = {false, false};
  for (const Json& line : r.json_lines) {
    if (!line.contains("delta") || !line["delta"].contains("tool_calls")) continue;
    const Json& call = line["delta"]["tool_calls"][0];
    const int index = call["index"].get<int>();
    if (!saw_first[index]) {
      saw_first[index] = true;
      EXPECT_TRUE(call["id"].get<std::string>().starts_with("call_"));
      EXPECT_EQ(call["type"], "function");
      EXPECT_EQ(call["function"]["arguments"], "");
      EXPECT_TRUE(call["function"].contains("name"));
    } else {
      EXPECT_FALSE(call.contains("id"));
      EXPECT_FALSE(call["function"].contains("name"));
      args[static_cast<std::size_t>(index)] += call["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_EQ(Json::parse(args[0]),
            Json::parse(R"({"command": "echo \"<｜end▁of\" 中", "n": [1, {"a": "b"}]})"));
  EXPECT_EQ(args[1], "{}");
  EXPECT_EQ(r.json_lines.back(),
            Json::parse(R"({"event": "done", "finish_reason": "tool_calls"})"));
}

TEST(StreamParser, ErrorEventEndsTheStream) {
  Recorder r = stream({"no think end", " here"}, options(Mode::Thinking));
  ASSERT_EQ(r.events.back().kind, EventKind::Error);
  EXPECT_EQ(r.events.back().text,
            "missing </think>: the completion ended inside reasoning (at byte 17)");
}

}  // namespace
}  // namespace warren::toolcall
