// Strict mode: accepts what the reference parser accepts, rejects the rest with a message and the
// byte offset, and reports per-call problems without losing the other calls.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

using testing::kEos;
using testing::must_parse;
using testing::options;
using testing::parse;

const std::string kBlock =
    "\n\n<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"bash\">\n"
    "<｜DSML｜parameter name=\"command\" string=\"true\">ls -la \"/tmp\" && echo '<ok>'"
    "</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"timeout\" string=\"false\">30</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"submit\">\n\n</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>";

Error parse_error(const std::string& text, Mode mode = Mode::Thinking) {
  auto r = parse(text, options(mode));
  EXPECT_FALSE(r.has_value()) << "accepted: " << text;
  return r ? Error{} : r.error();
}

TEST(StrictParser, ReasoningContentAndCalls) {
  const auto m = must_parse("I will list files.</think>Listing." + kBlock + std::string(kEos),
                            options(Mode::Thinking));
  EXPECT_EQ(m.reasoning_content, "I will list files.");
  EXPECT_EQ(m.content, "Listing.");
  ASSERT_EQ(m.tool_calls.size(), 2u);
  EXPECT_EQ(m.tool_calls[0].name, "bash");
  EXPECT_EQ(m.tool_calls[0].arguments,
            R"({"command": "ls -la \"/tmp\" && echo '<ok>'", "timeout": 30})");
  EXPECT_EQ(m.tool_calls[1].name, "submit");
  EXPECT_EQ(m.tool_calls[1].arguments, "{}");
  EXPECT_TRUE(m.tool_calls[0].errors.empty());
  EXPECT_TRUE(m.warnings.empty());
  EXPECT_TRUE(m.tool_calls[0].id.starts_with("call_"));
  EXPECT_EQ(m.tool_calls[0].id.size(), 29u);
  EXPECT_NE(m.tool_calls[0].id, m.tool_calls[1].id);
}

TEST(StrictParser, ChatModeHasNoReasoning) {
  const auto m = must_parse("Hello <b>there</b> 1 < 2" + std::string(kEos), options(Mode::Chat));
  EXPECT_EQ(m.content, "Hello <b>there</b> 1 < 2");
  EXPECT_EQ(m.reasoning_content, "");
  EXPECT_TRUE(m.tool_calls.empty());
}

TEST(StrictParser, EndOfSentenceIsRequiredUnlessTheTurnEndsInToolCalls) {
  // As the reference: a turn that ends in content needs the token; a tool-call block does not.
  EXPECT_EQ(parse_error("r</think>c").message,
            "missing <｜end▁of▁sentence｜> at the end of the completion (--lenient accepts text "
            "without it) (at byte 10)");
  EXPECT_TRUE(parse_error("", Mode::Chat).message.starts_with("missing <｜end▁of▁sentence｜> at"));
  EXPECT_EQ(must_parse("c" + kBlock, options(Mode::Chat)).tool_calls.size(), 2u);
  // Lenient mode takes the end of input for the token, silently (serving engines strip it).
  const auto m = must_parse("r</think>c", options(Mode::Thinking, true));
  EXPECT_EQ(m.content, "c");
  EXPECT_TRUE(m.warnings.empty());
}

TEST(StrictParser, EmptyBlockAndEmptyTurn) {
  EXPECT_TRUE(must_parse("\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>", options(Mode::Chat))
                  .tool_calls.empty());
  EXPECT_EQ(must_parse(std::string(kEos), options(Mode::Chat)).content, "");
}

// The reference stops reading a block at the end of the text, so completions cut at these points
// are accepted; at others they are not.
TEST(StrictParser, EarlyEndsTheReferenceAccepts) {
  const std::string head = "hi\n\n<｜DSML｜tool_calls";
  EXPECT_EQ(must_parse(head, options(Mode::Chat)).content, "hi");
  const std::string invoke = head + ">\n<｜DSML｜invoke name=\"x\">";
  for (const std::string& ok :
       {invoke + "\n", invoke + "\n\n",
        invoke + "\n<｜DSML｜parameter name=\"a\" string=\"true\">v</｜DSML｜parameter>\n",
        invoke + "\n<｜DSML｜parameter name=\"a\" string=\"true\">v</｜DSML｜parameter>\n"
                 "</｜DSML｜invoke"}) {
    const auto m = must_parse(ok, options(Mode::Chat));
    ASSERT_EQ(m.tool_calls.size(), 1u) << ok;
    EXPECT_EQ(m.tool_calls[0].name, "x");
    EXPECT_TRUE(m.tool_calls[0].errors.empty());
    EXPECT_EQ(m.tool_calls[0].arguments,
              ok.find("\"a\"") == std::string::npos ? "{}" : "{\"a\": \"v\"}");
  }
  for (const std::string& bad :
       {head + ">", head + ">\n", invoke, invoke + "\n\n\n",
        invoke + "\n<｜DSML｜parameter name=\"a\" string=\"true\">v</｜DSML｜parameter>",
        invoke + "\n<｜DSML｜parameter name=\"a\" string=\"true\">v",
        invoke + "\n</｜DSML｜invoke>", invoke + "\n</｜DSML｜invoke>\n"}) {
    EXPECT_FALSE(parse(bad, options(Mode::Chat)).has_value()) << bad;
  }
}

TEST(StrictParser, ParameterValuesAreRaw) {
  const std::string text =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"write\">\n"
      "<｜DSML｜parameter name=\"text\" string=\"true\">line1\nline2\t\"q\" \\ <｜DSML｜invoke "
      "</think> 中文</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"obj\" string=\"false\">{\"a\": [1, 2.50, "
      "null]}</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  const auto m = must_parse(text, options(Mode::Chat));
  ASSERT_EQ(m.tool_calls.size(), 1u);
  // string="true" values are JSON-quoted as json.dumps(ensure_ascii=False) would; JSON values are
  // spliced verbatim.
  EXPECT_EQ(m.tool_calls[0].arguments,
            "{\"text\": \"line1\\nline2\\t\\\"q\\\" \\\\ <｜DSML｜invoke </think> 中文\", "
            "\"obj\": {\"a\": [1, 2.50, null]}}");
  const Json args = Json::parse(m.tool_calls[0].arguments);
  EXPECT_EQ(args["text"], "line1\nline2\t\"q\" \\ <｜DSML｜invoke </think> 中文");
}

TEST(StrictParser, MissingThinkEndIsAnError) {
  const Error e = parse_error("thinking forever");
  EXPECT_EQ(e.message, "missing </think>: the completion ended inside reasoning (at byte 16)");
  EXPECT_EQ(e.offset, 16u);
}

TEST(StrictParser, BlockInsideReasoningIsAnError) {
  const Error e = parse_error("let me call" + kBlock);
  EXPECT_EQ(e.message, "tool calls inside reasoning: missing </think> (at byte 13)");
}

TEST(StrictParser, SpecialTokensInContentAreErrors) {
  EXPECT_EQ(parse_error("r</think>a<think>b").message,
            "unexpected special token <think> in content (at byte 10)");
  EXPECT_EQ(parse_error("a<｜begin▁of▁sentence｜>", Mode::Chat).message,
            "unexpected special token <｜begin▁of▁sentence｜> in content (at byte 1)");
  EXPECT_EQ(parse_error("r</think>x ｜DSML｜ y").message, "stray ｜DSML｜ in content (at byte 11)");
  EXPECT_EQ(parse_error("a｜DSML｜</think>").message, "stray ｜DSML｜ in reasoning (at byte 1)");
}

TEST(StrictParser, BlockMustStartOnANewParagraph) {
  EXPECT_EQ(parse_error("text<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>", Mode::Chat).message,
            "a tool-call block must start on a new paragraph (\"\\n\\n<｜DSML｜tool_calls>\") "
            "(at byte 4)");
}

TEST(StrictParser, VariantMarkupIsPlainTextInStrictMode) {
  // The reference only knows the exact marker: ASCII bars are ordinary text.
  const auto m = must_parse("\n\n<|DSML|tool_calls>\n</|DSML|tool_calls>" + std::string(kEos),
                            options(Mode::Chat));
  EXPECT_EQ(m.content, "\n\n<|DSML|tool_calls>\n</|DSML|tool_calls>");
  // Doubled bars contain the exact marker, so they are rejected.
  EXPECT_EQ(parse_error("\n\n<｜｜DSML｜｜tool_calls>", Mode::Chat).message,
            "stray ｜DSML｜ in content (at byte 6)");
}

TEST(StrictParser, TextAfterTheBlockOrAfterEosIsAnError) {
  EXPECT_EQ(parse_error("c" + kBlock + "trailing", Mode::Chat).message,
            "unexpected text after the tool-call block (at byte 331)");
  EXPECT_EQ(parse_error("c" + std::string(kEos) + "more", Mode::Chat).message,
            "unexpected text after the end-of-sentence token (at byte 28)");
}

TEST(StrictParser, TagsNeedExactlyOneNewlineBetweenThem) {
  const std::string same_line =
      "\n\n<｜DSML｜tool_calls><｜DSML｜invoke "
      "name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  EXPECT_EQ(parse_error(same_line, Mode::Chat).message,
            "expected a single newline between tool-call tags (at byte 24)");
  const std::string extra_line =
      "\n\n<｜DSML｜tool_calls>\n\n<｜DSML｜invoke "
      "name=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  EXPECT_FALSE(parse(extra_line, options(Mode::Chat)).has_value());
  const std::string junk = "\n\n<｜DSML｜tool_calls>\nhello\n</｜DSML｜tool_calls>";
  EXPECT_EQ(parse_error(junk, Mode::Chat).message,
            "unexpected text between tool-call tags (at byte 25)");
}

TEST(StrictParser, MalformedTagsAreErrors) {
  const std::string bad_flag =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
      "<｜DSML｜parameter name=\"x\" string=\"maybe\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls>";
  EXPECT_EQ(parse_error(bad_flag, Mode::Chat).message,
            "expected string=\"true\" or string=\"false\" in the parameter tag (at byte 73)");
  const std::string no_name = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke id=\"f\">\n";
  EXPECT_EQ(parse_error(no_name, Mode::Chat).message,
            "expected name=\"...\" in the invoke tag (at byte 42)");
  const std::string unclosed =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" "
      "string=\"true\">abc";
  EXPECT_EQ(parse_error(unclosed, Mode::Chat).message,
            "the completion ended inside a tool call (at byte 100)");
}

TEST(StrictParser, PerCallErrorsKeepTheOtherCalls) {
  const std::string text =
      "\n\n<｜DSML｜tool_calls>\n"
      "<｜DSML｜invoke name=\"a\">\n"
      "<｜DSML｜parameter name=\"x\" string=\"true\">1</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"x\" string=\"true\">2</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "<｜DSML｜invoke name=\"b\">\n"
      "<｜DSML｜parameter name=\"y\" string=\"false\">{\"unclosed\": </｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "<｜DSML｜invoke name=\"c\">\n"
      "<｜DSML｜parameter name=\"z\" string=\"false\">[1]</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls>";
  const auto m = must_parse(text, options(Mode::Chat));
  ASSERT_EQ(m.tool_calls.size(), 3u);
  EXPECT_EQ(m.tool_calls[0].errors, std::vector<std::string>{"duplicate parameter 'x'"});
  EXPECT_EQ(m.tool_calls[1].errors,
            std::vector<std::string>{
                "parameter 'y': invalid JSON value (unexpected end of JSON at byte 13)"});
  EXPECT_TRUE(m.tool_calls[2].errors.empty());
  EXPECT_EQ(m.tool_calls[2].arguments, "{\"z\": [1]}");
}

TEST(StrictParser, UnknownToolsAndSchemaViolationsWithToolSet) {
  auto tools = ToolSet::from_json(Json::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "parameters": {
      "type": "object",
      "properties": {"location": {"type": "string"},
                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                     "days": {"type": "integer"}},
      "required": ["location"], "additionalProperties": false}}}])"));
  ASSERT_TRUE(tools.has_value());
  ParserOptions o = options(Mode::Chat);
  o.tools = std::make_shared<const ToolSet>(std::move(*tools));
  const std::string text =
      "\n\n<｜DSML｜tool_calls>\n"
      "<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"unit\" string=\"true\">kelvin</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"days\" string=\"false\">2.5</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"color\" string=\"true\">red</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "<｜DSML｜invoke name=\"launch_rocket\">\n\n</｜DSML｜invoke>\n"
      "<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"location\" string=\"true\">Paris</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls>";
  const auto m = must_parse(text, o);
  ASSERT_EQ(m.tool_calls.size(), 3u);
  EXPECT_EQ(m.tool_calls[0].errors,
            (std::vector<std::string>{
                "missing required parameter 'location'",
                "'unit': must be one of [\"celsius\", \"fahrenheit\"], got \"kelvin\"",
                "'days': expected integer, got number", "'color': unknown parameter"}));
  EXPECT_EQ(m.tool_calls[1].errors,
            std::vector<std::string>{"unknown tool 'launch_rocket' (available: get_weather)"});
  EXPECT_TRUE(m.tool_calls[2].errors.empty());
}

}  // namespace
}  // namespace warren::toolcall
