// The V4 prompt encoder: the four official vectors byte for byte, then each rule on its own.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

using testing::data_path;
using testing::read_file;

std::string encode_json(const std::string& request_json, Mode mode, Effort effort = Effort::None) {
  auto request = chat_request_from_json(Json::parse(request_json));
  if (!request) throw std::runtime_error(request.error().message);
  EncodeOptions o;
  o.mode = mode;
  o.effort = effort;
  auto prompt = make_codec(Format::V4)->encode(*request, o);
  if (!prompt) throw std::runtime_error(prompt.error().message);
  return *prompt;
}

Error encode_error(const std::string& request_json, Mode mode = Mode::Thinking) {
  auto request = chat_request_from_json(Json::parse(request_json));
  if (!request) return request.error();
  EncodeOptions o;
  o.mode = mode;
  auto prompt = make_codec(Format::V4)->encode(*request, o);
  EXPECT_FALSE(prompt.has_value());
  return prompt ? Error{} : prompt.error();
}

struct Vector {
  int number;
  Mode mode;
};

class OfficialVectors : public ::testing::TestWithParam<Vector> {};

TEST_P(OfficialVectors, EncodesByteForByte) {
  const Vector v = GetParam();
  const std::string input =
      read_file(data_path("test_input_" + std::to_string(v.number) + ".json"));
  const std::string expected =
      read_file(data_path("test_output_" + std::to_string(v.number) + ".txt"));
  ASSERT_FALSE(input.empty());
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(encode_json(input, v.mode), expected);
}

INSTANTIATE_TEST_SUITE_P(Dsv4, OfficialVectors,
                         ::testing::Values(Vector{1, Mode::Thinking}, Vector{2, Mode::Thinking},
                                           Vector{3, Mode::Thinking}, Vector{4, Mode::Chat}));

// The official test also parses the assistant turns of vector 1 back into messages.
TEST(OfficialVectors, FirstAssistantTurnOfVector1ParsesBack) {
  const std::string prompt = read_file(data_path("test_output_1.txt"));
  const std::string open = "<｜Assistant｜><think>";
  const std::size_t start = prompt.find(open) + open.size();
  const std::size_t end = prompt.find("<｜User｜>", start);
  const auto m =
      testing::must_parse(prompt.substr(start, end - start), testing::options(Mode::Thinking));
  EXPECT_EQ(m.reasoning_content,
            "The user wants to know the weather in Beijing. I should use the get_weather tool.");
  EXPECT_EQ(m.content, "");
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "get_weather");
  EXPECT_EQ(m.tool_calls[0].arguments, R"({"location": "Beijing", "unit": "celsius"})");

  const std::size_t last = prompt.rfind(open) + open.size();
  const auto final_turn =
      testing::must_parse(prompt.substr(last), testing::options(Mode::Thinking));
  EXPECT_EQ(final_turn.reasoning_content, "Got the weather data. Let me format a nice response.");
  EXPECT_EQ(
      final_turn.content,
      "The weather in Beijing is currently sunny with a temperature of 22°C and 45% humidity.");
  EXPECT_TRUE(final_turn.tool_calls.empty());
}

TEST(OfficialVectors, ACompletionRendersAsTheAssistantTurnOfVector1) {
  // What a scripted model answers with is the turn as the prompt holds it, up to its end of
  // sentence, and parses back to the same call.
  const std::string prompt = read_file(data_path("test_output_1.txt"));
  const std::string open = "<｜Assistant｜><think>";
  const std::size_t start = prompt.find(open) + open.size();
  const std::size_t end = prompt.find("<｜end▁of▁sentence｜>", start);
  Message turn{.role = Role::Assistant};
  turn.reasoning_content =
      "The user wants to know the weather in Beijing. I should use the get_weather tool.";
  turn.tool_calls.push_back(
      {"call_1", "get_weather", R"({"location":"Beijing","unit":"celsius"})"});
  const auto rendered = make_codec(Format::V4)->render_completion(turn);
  ASSERT_TRUE(rendered) << rendered.error().message;
  EXPECT_EQ(*rendered, prompt.substr(start, end - start));
  const auto back = testing::must_parse(*rendered, testing::options(Mode::Thinking));
  ASSERT_EQ(back.tool_calls.size(), 1u);
  EXPECT_EQ(back.tool_calls[0].arguments, R"({"location": "Beijing", "unit": "celsius"})");

  turn.tool_calls = {{"", "submit", "{}"}};  // a call without arguments parses back too
  const auto submit = make_codec(Format::V4)->render_completion(turn);
  ASSERT_TRUE(submit);
  const auto parsed = testing::must_parse(*submit, testing::options(Mode::Thinking));
  ASSERT_EQ(parsed.tool_calls.size(), 1u);
  EXPECT_EQ(parsed.tool_calls[0].name, "submit");
}

TEST(Encoder, RequestToolsWithoutSystemMessageInsertEmptySystemFirst) {
  const std::string prompt = encode_json(R"({
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "messages": [{"role": "user", "content": "hi"}]})",
                                         Mode::Thinking);
  const std::string bos = "<｜begin▁of▁sentence｜>";
  ASSERT_EQ(prompt.substr(0, bos.size() + 10), bos + "\n\n## Tools");
  EXPECT_NE(prompt.find("{\"name\": \"f\", \"parameters\": {\"type\": \"object\"}}\n\nYou MUST"),
            std::string::npos);
  EXPECT_TRUE(prompt.ends_with("tool calls.\n<｜User｜>hi<｜Assistant｜><think>"));
}

TEST(Encoder, ToolResultsFollowCallOrderAndMergeWithUserText) {
  const std::string prompt = encode_json(R"([
    {"role": "user", "content": "q"},
    {"role": "assistant", "reasoning_content": "r", "tool_calls": [
      {"id": "a", "function": {"name": "f", "arguments": "{}"}},
      {"id": "b", "function": {"name": "g", "arguments": "{\"x\": 1.5}"}}]},
    {"role": "tool", "tool_call_id": "b", "content": "B"},
    {"role": "tool", "tool_call_id": "a", "content": "A"},
    {"role": "user", "content": "more"}])",
                                         Mode::Chat);
  EXPECT_NE(prompt.find("<｜User｜><tool_result>A</tool_result>\n\n<tool_result>B</tool_result>"
                        "\n\nmore<｜Assistant｜></think>"),
            std::string::npos)
      << prompt;
  EXPECT_NE(prompt.find("<｜DSML｜parameter name=\"x\" string=\"false\">1.5</｜DSML｜parameter>"),
            std::string::npos);
  // A call without arguments renders an empty parameter list between two newlines.
  EXPECT_NE(prompt.find("<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>"), std::string::npos);
}

TEST(Encoder, DropThinkingRemovesEarlierReasoningAndDeveloperTurns) {
  const std::string request = R"([
    {"role": "developer", "content": "dev note"},
    {"role": "user", "content": "one"},
    {"role": "assistant", "reasoning_content": "old thoughts", "content": "A1"},
    {"role": "user", "content": "two"}])";
  const std::string prompt = encode_json(request, Mode::Thinking);
  EXPECT_EQ(prompt.find("old thoughts"), std::string::npos);
  EXPECT_EQ(prompt.find("dev note"), std::string::npos);
  EXPECT_EQ(prompt,
            "<｜begin▁of▁sentence｜><｜User｜>one<｜Assistant｜></think>A1<｜end▁of▁sentence｜>"
            "<｜User｜>two<｜Assistant｜><think>");
}

TEST(Encoder, NothingIsDroppedWhenAnyMessageCarriesTools) {
  const std::string prompt = encode_json(R"({
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "messages": [
      {"role": "user", "content": "one"},
      {"role": "assistant", "reasoning_content": "old thoughts", "content": "A1"},
      {"role": "user", "content": "two"}]})",
                                         Mode::Thinking);
  EXPECT_NE(prompt.find("<｜User｜>one<｜Assistant｜><think>old thoughts</think>A1"),
            std::string::npos)
      << prompt;
}

TEST(Encoder, EffortMaxAddsTheParagraphAfterBosOnlyInThinkingMode) {
  const std::string request = R"([{"role": "user", "content": "hi"}])";
  const std::string max = encode_json(request, Mode::Thinking, Effort::Max);
  EXPECT_EQ(max.find("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum with no shortcuts "
                     "permitted.\nYou MUST be very thorough"),
            0u);
  EXPECT_TRUE(max.ends_with("left unchecked.\n\n<｜User｜>hi<｜Assistant｜><think>"));
  EXPECT_EQ(encode_json(request, Mode::Thinking, Effort::High),
            encode_json(request, Mode::Thinking, Effort::None));
  EXPECT_EQ(encode_json(request, Mode::Chat, Effort::Max),
            "<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜></think>");
}

TEST(Encoder, ArgumentsThatAreNotJsonAreKeptUnderAnArgumentsKey) {
  const std::string prompt = encode_json(R"([{"role": "user", "content": "q"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]}])",
                                         Mode::Chat);
  EXPECT_NE(prompt.find("<｜DSML｜parameter name=\"arguments\" string=\"true\">not json<"),
            std::string::npos);
}

TEST(Encoder, ArgumentsGivenAsAnObjectAreEncodedAsTheirFields) {
  const std::string prompt = encode_json(R"([{"role": "user", "content": "q"},
    {"role": "assistant", "tool_calls": [{"function": {"name": "f",
      "arguments": {"path": "a.txt", "n": [1, {"k": null}], "flag": true}}}]}])",
                                         Mode::Chat);
  EXPECT_NE(
      prompt.find("<｜DSML｜parameter name=\"path\" string=\"true\">a.txt</｜DSML｜parameter>\n"
                  "<｜DSML｜parameter name=\"n\" string=\"false\">[1, {\"k\": null}]"
                  "</｜DSML｜parameter>\n"
                  "<｜DSML｜parameter name=\"flag\" string=\"false\">true</｜DSML｜parameter>"),
      std::string::npos)
      << prompt;
}

TEST(Encoder, TaskTokens) {
  // Non-action tasks put their token right after the turn.
  EXPECT_EQ(encode_json(R"([{"role": "user", "content": "x", "task": "query"},
                            {"role": "assistant", "content": "q"}])",
                        Mode::Thinking),
            "<｜begin▁of▁sentence｜><｜User｜>x<｜query｜>q<｜end▁of▁sentence｜>");
  EXPECT_EQ(encode_json(R"([{"role": "user", "content": "x", "task": "action"}])", Mode::Thinking),
            "<｜begin▁of▁sentence｜><｜User｜>x<｜Assistant｜><think><｜action｜>");
}

TEST(Encoder, LatestReminderAndPrefill) {
  EXPECT_EQ(encode_json(R"([{"role": "system", "content": "S"},
                            {"role": "user", "content": "u"},
                            {"role": "latest_reminder", "content": "R"},
                            {"role": "assistant", "content": "par", "wo_eos": true}])",
                        Mode::Chat),
            "<｜begin▁of▁sentence｜>S<｜User｜>u<｜Assistant｜></think><｜latest_reminder｜>Rpar");
}

TEST(Encoder, ResponseFormatOnSystemMessage) {
  const std::string prompt = encode_json(
      R"([{"role": "system", "content": "S", "response_format": {"type": "json_object"}},
          {"role": "user", "content": "u"}])",
      Mode::Chat);
  EXPECT_EQ(
      prompt,
      "<｜begin▁of▁sentence｜>S\n\n## Response Format:\n\nYou MUST strictly adhere to the "
      "following schema to reply:\n{\"type\": \"json_object\"}<｜User｜>u<｜Assistant｜></think>");
}

TEST(Encoder, ContentPartsAreJoined) {
  EXPECT_EQ(encode_json(R"([{"role": "user", "content": [{"type": "text", "text": "a"},
                                                        {"type": "text", "text": "b"}]}])",
                        Mode::Chat),
            "<｜begin▁of▁sentence｜><｜User｜>a\nb<｜Assistant｜></think>");
}

// Details where the reference's Python semantics show through (found by comparing with a
// transcription of the reference encoder).
TEST(Encoder, ReferenceQuirks) {
  // Tools on a user message are dropped by the reference's merge: thinking is still dropped.
  EXPECT_EQ(encode_json(R"([{"role": "user", "content": "q1"},
    {"role": "assistant", "reasoning_content": "r1", "content": "a1"},
    {"role": "user", "content": "q2", "tools": [{"type": "function", "function": {"name": "f"}}]}])",
                        Mode::Thinking),
            "<｜begin▁of▁sentence｜><｜User｜>q1<｜Assistant｜></think>a1<｜end▁of▁sentence｜>"
            "<｜User｜>q2<｜Assistant｜><think>");
  // A null tool result and a reminder without content are written as Python's None.
  EXPECT_EQ(encode_json(R"([{"role": "user", "content": "q"}, {"role": "tool", "content": null},
                            {"role": "latest_reminder"}])",
                        Mode::Chat),
            "<｜begin▁of▁sentence｜><｜User｜>q\n\n<tool_result>None</tool_result>"
            "<｜Assistant｜></think><｜latest_reminder｜>None");
  // An empty response_format is falsy: not rendered.
  EXPECT_EQ(
      encode_json(R"([{"role": "system", "content": "S", "response_format": {}}])", Mode::Chat),
      "<｜begin▁of▁sentence｜>S");
  // No messages: BOS alone, even with effort max.
  EXPECT_EQ(encode_json("[]", Mode::Thinking, Effort::Max), "<｜begin▁of▁sentence｜>");
  // A call id given inside `function` orders the results too.
  EXPECT_NE(encode_json(R"([{"role": "user", "content": "q"},
    {"role": "assistant", "tool_calls": [{"function": {"id": "a", "name": "f", "arguments": "{}"}},
                                         {"function": {"id": "b", "name": "g", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "b", "content": "B"},
    {"role": "tool", "tool_call_id": "a", "content": "A"}])",
                        Mode::Chat)
                .find("<tool_result>A</tool_result>\n\n<tool_result>B</tool_result>"),
            std::string::npos);
}

TEST(Encoder, DeeplyNestedJsonIsRefusedNotCrashed) {
  std::string deep(150000, '[');
  deep.append(150000, ']');
  // Two members: growing an ordered object copies the first, and copies recurse.
  const std::string request = R"({"tools": [{"type": "function", "function": {"name": "f",
    "parameters": )" + deep + R"(, "description": "d"}}], "messages": []})";
  auto parsed = parse_json(request);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().message, "JSON nested deeper than 512 levels");
  EXPECT_EQ(parse_json("{\"a\": [1,]}").error().message,
            "invalid JSON: expected a JSON value at byte 9");
  std::string ok(500, '[');
  ok.append(500, ']');
  auto fine = parse_json(R"({"messages": [], "tools": [{"name": "f", "parameters": )" + ok + "}]}");
  ASSERT_TRUE(fine.has_value());
  EXPECT_TRUE(chat_request_from_json(*fine).has_value());
  // Arguments are JSON text inside the request: they are checked the same way.
  const Json req = {
      {"messages",
       {{{"role", "assistant"},
         {"tool_calls",
          {{{"function", {{"name", "f"}, {"arguments", "{\"a\": " + deep + ", \"b\": 1}"}}}}}}}}}};
  auto request_ok = chat_request_from_json(req);
  ASSERT_TRUE(request_ok.has_value());
  auto prompt = make_codec(Format::V4)->encode(*request_ok, EncodeOptions{});
  ASSERT_FALSE(prompt.has_value());
  EXPECT_EQ(prompt.error().message, "tool call 'f': arguments JSON nested deeper than 512 levels");
}

TEST(Encoder, BadRequestsAreOneLineErrorsNamingTheField) {
  EXPECT_EQ(encode_error(R"([{"role": "robot", "content": "x"}])").message,
            "messages[0].role: unknown role 'robot' (expected system, user, assistant, tool, "
            "developer or latest_reminder)");
  EXPECT_EQ(encode_error(R"([{"role": "developer", "content": ""}])").message,
            "a developer message needs content");
  EXPECT_EQ(encode_error(R"([{"role": "user", "content": "x", "task": "dance"}])").message,
            "unknown task 'dance' (expected action, query, authority, domain, title or read_url)");
  EXPECT_EQ(
      encode_error(R"({"messages": [{"role": "assistant", "tool_calls": [{"id": "a"}]}]})").message,
      "messages[0].tool_calls[0]: missing 'function' object");
  EXPECT_EQ(encode_error(R"({"messages": 3})").message,
            "messages: expected an array of messages, got number");
  EXPECT_EQ(encode_error(R"([{"role": "user", "content": [{"type": "image_url"}]}])").message,
            "messages[0].content[0]: content parts of type 'image_url' are not supported (only "
            "text)");
  EXPECT_EQ(encode_error(R"([{"role": "user", "content": "q"}, {"role": "assistant",
              "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}])")
                .message,
            "tool call 'f': arguments must be a JSON object");
}

}  // namespace
}  // namespace warren::toolcall
