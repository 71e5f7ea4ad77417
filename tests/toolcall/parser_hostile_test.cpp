// Hostile input: huge values, deep nesting, NUL bytes, invalid UTF-8. Nothing crashes, nothing
// recurses without bound, and memory stays linear in the input.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

using testing::must_parse;
using testing::options;
using testing::parse;

std::string call_with(const std::string& flag, const std::string& value) {
  return "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"v\" "
         "string=\"" +
         flag + "\">" + value + "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(HostileInput, HundredMegabyteParameter) {
  const std::size_t size = 100u << 20;
  std::string value(size, 'x');
  for (std::size_t i = 0; i < size; i += 4096) value[i] = '"';  // each one escapes to two bytes
  const std::string text = call_with("true", value);
  value.clear();
  value.shrink_to_fit();

  [[maybe_unused]] const long before = peak_rss_kib();
  const auto whole = must_parse(text, options(Mode::Chat));
  ASSERT_EQ(whole.tool_calls.size(), 1u);
  EXPECT_EQ(whole.tool_calls[0].arguments.size(), size + size / 4096 + 9);
  const auto streamed = must_parse(text, options(Mode::Chat), 64 * 1024);
  EXPECT_EQ(streamed.tool_calls[0].arguments, whole.tool_calls[0].arguments);
#if !defined(__SANITIZE_ADDRESS__)
  // Two parsed copies of ~100 MB are alive here, plus the builder's growth; anything beyond a
  // small multiple of the input means a non-linear buffer somewhere.
  const long grown_mib = (peak_rss_kib() - before) / 1024;
  EXPECT_LT(grown_mib, 600) << "peak memory grew by " << grown_mib << " MiB";
#endif
}

TEST(HostileInput, HundredThousandLevelsOfNesting) {
  std::string deep(100000, '[');
  deep += "1";
  deep.append(100000, ']');
  auto tools = ToolSet::from_json(Json::parse(R"([{"name": "f", "parameters": {"type": "object",
      "properties": {"v": {"type": "array", "items": {"type": "array"}}}}}])"));
  ParserOptions o = options(Mode::Chat);
  o.tools = std::make_shared<const ToolSet>(std::move(*tools));
  const auto m = must_parse(call_with("false", deep), options(Mode::Chat));
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_TRUE(m.tool_calls[0].errors.empty());
  EXPECT_EQ(m.tool_calls[0].arguments.size(), deep.size() + 7);
  // Against a schema, arguments that deep are refused for that call.
  EXPECT_EQ(must_parse(call_with("false", deep), o).tool_calls[0].errors,
            std::vector<std::string>{"arguments: JSON nested deeper than 512 levels"});

  // A sibling after the deep value: checking it against a schema must not copy it.
  const std::string two =
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
      "<｜DSML｜parameter name=\"v\" string=\"false\">" +
      deep +
      "</｜DSML｜parameter>\n<｜DSML｜parameter name=\"w\" string=\"true\">x"
      "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  const auto sibling = must_parse(two, o);
  EXPECT_EQ(sibling.tool_calls[0].errors,
            std::vector<std::string>{"arguments: JSON nested deeper than 512 levels"});
  EXPECT_TRUE(must_parse(two, options(Mode::Chat)).tool_calls[0].errors.empty());

  deep.pop_back();  // unbalanced: a per-call error, not a crash
  const auto broken = must_parse(call_with("false", deep), options(Mode::Chat, true));
  ASSERT_EQ(broken.tool_calls[0].errors.size(), 1u);
  EXPECT_EQ(broken.tool_calls[0].errors[0],
            "parameter 'v': invalid JSON value (unexpected end of JSON at byte 200000)");
}

TEST(HostileInput, NulBytesAreTextAndEscapedInArguments) {
  const std::string nul("a\0b", 3);
  const auto m = must_parse(nul + call_with("true", nul), options(Mode::Chat));
  EXPECT_EQ(m.content, nul);
  EXPECT_EQ(m.tool_calls[0].arguments, "{\"v\": \"a\\u0000b\"}");
  EXPECT_EQ(Json::parse(m.tool_calls[0].arguments)["v"].get<std::string>(), nul);
}

TEST(HostileInput, InvalidUtf8IsAnErrorInStrictMode) {
  for (const std::string& bad :
       {std::string("\xff"), std::string("\xc0\x80"), std::string("\xed\xa0\x80"),
        std::string("\xf4\x90\x80\x80"), std::string("\xe4\xb8")}) {
    auto r = parse("ok " + bad, options(Mode::Chat));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "invalid UTF-8 in content (at byte 3)");
    auto v = parse(call_with("true", "ok " + bad), options(Mode::Chat));
    ASSERT_FALSE(v.has_value());
    EXPECT_EQ(v.error().message.substr(0, 33), "invalid UTF-8 in parameter 'v' (a");
  }
}

TEST(HostileInput, OversizedTagsAreRejectedNotBuffered) {
  const std::string name(10000, 'n');
  auto r = parse("\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"" + name + "\">\n",
                 options(Mode::Chat));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "invoke tag not closed with '\">' (at byte 42)");
}

TEST(HostileInput, ThousandsOfParametersInOneCall) {
  std::string text = "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n";
  for (int i = 0; i < 20000; ++i)
    text += "<｜DSML｜parameter name=\"p" + std::to_string(i % 10000) +
            "\" string=\"false\">1</｜DSML｜parameter>\n";
  text += "</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
  const auto m = must_parse(text, options(Mode::Chat));
  ASSERT_EQ(m.tool_calls.size(), 1u);
  EXPECT_EQ(m.tool_calls[0].errors.size(), 10000u);  // every name repeats once
  EXPECT_EQ(m.tool_calls[0].errors[0], "duplicate parameter 'p0'");
}

TEST(HostileInput, ManyCallsAndEmptyChunks) {
  std::string text = "\n\n<｜DSML｜tool_calls>\n";
  for (int i = 0; i < 5000; ++i)
    text += "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"i\" string=\"false\">" +
            std::to_string(i) + "</｜DSML｜parameter>\n</｜DSML｜invoke>\n";
  text += "</｜DSML｜tool_calls>";
  MessageBuilder b;
  auto parser = make_codec(Format::V4)->make_parser(options(Mode::Chat), b);
  for (std::size_t at = 0; at < text.size(); at += 7) {
    parser->feed("");
    parser->feed(std::string_view(text).substr(at, 7));
  }
  parser->finish();
  ASSERT_FALSE(b.error());
  ASSERT_EQ(b.message().tool_calls.size(), 5000u);
  EXPECT_EQ(b.message().tool_calls[4999].arguments, "{\"i\": 4999}");
}

}  // namespace
}  // namespace warren::toolcall
