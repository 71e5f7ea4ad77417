// Lenient mode: one test per failure shape seen in real deployments (dsml.md), each recovered and
// reported as a warning, each rejected by strict mode.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

using testing::must_parse;
using testing::options;
using testing::parse;

const std::string kInvoke =
    "<｜DSML｜invoke name=\"bash\">\n"
    "<｜DSML｜parameter name=\"command\" string=\"true\">ls</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>";

ParsedMessage lenient(const std::string& text, Mode mode = Mode::Chat) {
  EXPECT_FALSE(parse(text, options(mode)).has_value()) << "strict mode accepted: " << text;
  return must_parse(text, options(mode, /*lenient=*/true));
}

std::vector<std::string> warning_texts(const ParsedMessage& m) {
  std::vector<std::string> out;
  for (const auto& w : m.warnings) out.push_back(w.message);
  return out;
}

void expect_one_ls_call(const ParsedMessage& m) {
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].name, "bash");
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"command\": \"ls\"}");
  EXPECT_TRUE(m.tool_calls[0].errors.empty());
}

TEST(LenientParser, MissingBlockStart) {
  const auto m = lenient("Running it.\n\n" + kInvoke + "\n");
  EXPECT_EQ(m.content, "Running it.");
  expect_one_ls_call(m);
  EXPECT_EQ(warning_texts(m),
            (std::vector<std::string>{"tool call without a <｜DSML｜tool_calls> block",
                                      "tool-call block not closed at the end of the completion"}));
  EXPECT_EQ(m.warnings[0].offset, 13u);
}

TEST(LenientParser, BlockInsideUnterminatedReasoning) {
  const auto m = lenient(
      "I should list files.\n\n<｜DSML｜tool_calls>\n" + kInvoke + "\n</｜DSML｜tool_calls>",
      Mode::Thinking);
  EXPECT_EQ(m.reasoning_content, "I should list files.");
  EXPECT_EQ(m.content, "");
  expect_one_ls_call(m);
  EXPECT_EQ(warning_texts(m),
            std::vector<std::string>{"tool calls inside reasoning: missing </think>"});
}

class VariantMarkers : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(VariantMarkers, AreReadAsDsml) {
  const auto [bar, block] = GetParam();
  const std::string text = "\n\n<" + bar + "DSML" + bar + block + ">\n<" + bar + "DSML" + bar +
                           "invoke name=\"bash\">\n<" + bar + "DSML" + bar +
                           "parameter name=\"command\" string=\"true\">ls</" + bar + "DSML" + bar +
                           "parameter>\n</" + bar + "DSML" + bar + "invoke>\n</" + bar + "DSML" +
                           bar + block + ">";
  const auto m = must_parse(text, options(Mode::Chat, true));
  expect_one_ls_call(m);
  EXPECT_EQ(m.content, "");
  ASSERT_FALSE(m.warnings.empty());
  EXPECT_TRUE(m.warnings[0].message.starts_with("read variant tool-call markup <"));
}

INSTANTIATE_TEST_SUITE_P(
    Deployments, VariantMarkers,
    ::testing::Values(std::pair{std::string("｜｜"), std::string("tool_calls")},
                      std::pair{std::string("|"), std::string("tool_calls")},
                      std::pair{std::string("||"), std::string("tool_calls")},
                      std::pair{std::string("｜"), std::string("function_calls")},
                      std::pair{std::string("｜"), std::string("toolcalls")}));

TEST(LenientParser, LoneArgumentsWrapperIsUnwrapped) {
  for (const std::string& param :
       {std::string("<｜DSML｜parameter name=\"arguments\" string=\"false\">{\"command\": "
                    "\"ls\"}</｜DSML｜parameter>"),
        std::string("<｜DSML｜parameter name=\"arguments\" string=\"true\">{\"command\": "
                    "\"ls\"}</｜DSML｜parameter>")}) {
    const std::string text = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n" + param +
                             "\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
    // Strict mode accepts it as written (the reference does too).
    EXPECT_EQ(must_parse(text, options(Mode::Chat)).tool_calls[0].arguments.substr(0, 14),
              "{\"arguments\": ");
    const auto m = must_parse(text, options(Mode::Chat, true));
    expect_one_ls_call(m);
    EXPECT_EQ(warning_texts(m),
              std::vector<std::string>{"unwrapped a lone 'arguments' parameter holding the call's "
                                       "arguments"});
  }
}

TEST(LenientParser, ArgumentsParameterIsKeptWhenTheToolDeclaresIt) {
  auto tools = ToolSet::from_json(Json::parse(R"([{"name": "bash", "parameters": {
      "type": "object", "properties": {"arguments": {"type": "object"}}}}])"));
  ParserOptions o = options(Mode::Chat, true);
  o.tools = std::make_shared<const ToolSet>(std::move(*tools));
  const auto m = must_parse(
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter "
      "name=\"arguments\" string=\"false\">{\"a\": 1}</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls>",
      o);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"arguments\": {\"a\": 1}}");
  EXPECT_TRUE(m.warnings.empty());
}

TEST(LenientParser, BadEscapesAndControlCharactersInJsonValues) {
  const std::string text =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"open\">\n"
      "<｜DSML｜parameter name=\"spec\" string=\"false\">{\"path\": \"C:\\Users\\x\", \"note\": "
      "\"a\tb\"}</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  // Strict: the call carries the problem, the parse succeeds.
  const auto strict = must_parse(text, options(Mode::Chat));
  ASSERT_EQ(strict.tool_calls[0].errors.size(), 1u);
  EXPECT_EQ(strict.tool_calls[0].errors[0],
            "parameter 'spec': invalid JSON value (invalid escape in string at byte 12)");
  const auto m = must_parse(text, options(Mode::Chat, true));
  ASSERT_TRUE(m.tool_calls[0].errors.empty());
  const Json args = Json::parse(m.tool_calls[0].arguments);
  EXPECT_EQ(args["spec"]["path"], "C:\\Users\\x");
  EXPECT_EQ(args["spec"]["note"], "a\tb");
  EXPECT_EQ(warning_texts(m),
            std::vector<std::string>{"parameter 'spec': repaired 3 bad escape(s) or control "
                                     "character(s) in a JSON value"});
}

TEST(LenientParser, BareWordInJsonValueIsReadAsString) {
  const auto m = must_parse(
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"mode\" "
      "string=\"false\">fast</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
      options(Mode::Chat, true));
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"mode\": \"fast\"}");
  EXPECT_EQ(m.warnings.size(), 1u);
}

TEST(LenientParser, TrailingTextAfterTheBlockIsDroppedWithAWarning) {
  const auto m = lenient("\n\n<｜DSML｜tool_calls>\n" + kInvoke +
                         "\n</｜DSML｜tool_calls>\nI have called the tool.<｜end▁of▁sentence｜>");
  expect_one_ls_call(m);
  EXPECT_EQ(warning_texts(m),
            std::vector<std::string>{"unexpected text after the tool-call block"});
}

TEST(LenientParser, UnclosedInvokeAndParameter) {
  const auto m = lenient(
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter "
      "name=\"command\" string=\"true\">ls</｜DSML｜invoke>\n<｜DSML｜invoke name=\"bash\">\n"
      "<｜DSML｜parameter name=\"command\" string=\"true\">pwd</｜DSML｜parameter>\n"
      "</｜DSML｜tool_calls>");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"command\": \"ls\"}");
  EXPECT_EQ(m.tool_calls[1].arguments, "{\"command\": \"pwd\"}");
  EXPECT_EQ(warning_texts(m),
            (std::vector<std::string>{"parameter 'command' not closed before </｜DSML｜invoke>",
                                      "invoke not closed with </｜DSML｜invoke>"}));
}

TEST(LenientParser, TruncatedCallIsFlaggedAndEarlierCallsKept) {
  const auto m = lenient("\n\n<｜DSML｜tool_calls>\n" + kInvoke +
                         "\n<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter name=\"command\" "
                         "string=\"true\">rm -");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_TRUE(m.tool_calls[0].errors.empty());
  EXPECT_EQ(m.tool_calls[1].arguments, "{\"command\": \"rm -\"}");
  EXPECT_EQ(m.tool_calls[1].errors,
            std::vector<std::string>{"the completion ended before this call was complete"});
}

TEST(LenientParser, StrayThinkTokensAreDropped) {
  const auto m = lenient("<think>reasoning</think>answer</think>", Mode::Thinking);
  EXPECT_EQ(m.reasoning_content, "reasoning");
  EXPECT_EQ(m.content, "answer");
  EXPECT_EQ(m.warnings.size(), 2u);
}

TEST(LenientParser, ReasoningCutOffByTheTokenLimit) {
  const auto m = lenient("still thinking", Mode::Thinking);
  EXPECT_EQ(m.reasoning_content, "still thinking");
  EXPECT_EQ(warning_texts(m),
            std::vector<std::string>{"missing </think>: the completion ended inside reasoning"});
}

TEST(LenientParser, InvalidUtf8IsReplaced) {
  const auto m = lenient(
      "a\xff"
      "b\xe4\xb8",
      Mode::Chat);
  EXPECT_EQ(m.content,
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
  EXPECT_EQ(m.warnings.size(), 2u);
  EXPECT_EQ(m.warnings[0].offset, 1u);
}

}  // namespace
}  // namespace warren::toolcall
