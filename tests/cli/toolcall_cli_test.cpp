// End to end: the `warren` binary as users and scripts call it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"

namespace {

using warren::testing::Outcome;
using warren::testing::slurp;
using warren::testing::warren;

std::string data(const std::string& name) {
  return slurp(std::string(WARREN_SOURCE_DIR) + "/tests/toolcall/data/" + name);
}

const std::string kCompletion =
    "thinking</think>ok\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n"
    "<｜DSML｜parameter name=\"command\" string=\"true\">ls</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>";

TEST(Cli, EncodePrintsTheOfficialVectorsExactly) {
  for (int i = 1; i <= 4; ++i) {
    const Outcome r =
        warren(std::string("toolcall encode --mode ") + (i == 4 ? "chat" : "thinking"),
               data("test_input_" + std::to_string(i) + ".json"));
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, data("test_output_" + std::to_string(i) + ".txt")) << "vector " << i;
  }
}

TEST(Cli, EncodeJsonAndEffort) {
  const Outcome r =
      warren("toolcall encode --effort max --json", R"([{"role": "user", "content": "hi"}])");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["prompt"].get<std::string>().find("Reasoning Effort: Absolute maximum") !=
              std::string::npos);
  EXPECT_EQ(j["bytes"], j["prompt"].get<std::string>().size());
}

TEST(Cli, EncodeRejectsBadInputWithOneLine) {
  const Outcome r = warren("toolcall encode", "{not json");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err,
            "warren toolcall encode: the request is not usable: invalid JSON: expected a "
            "string key at byte 1\n");
  EXPECT_EQ(r.out, "");
  const Outcome bad_role = warren("toolcall encode", R"([{"role": "robot"}])");
  EXPECT_EQ(bad_role.status, 1);
  EXPECT_EQ(bad_role.err.find("messages[0].role: unknown role 'robot'"), 24u) << bad_role.err;
}

TEST(Cli, ParsePrintsTheAssistantMessage) {
  const Outcome r = warren("toolcall parse --mode thinking --seed 3", kCompletion);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["role"], "assistant");
  EXPECT_EQ(j["content"], "ok");
  EXPECT_EQ(j["reasoning_content"], "thinking");
  ASSERT_EQ(j["tool_calls"].size(), 1u);
  EXPECT_EQ(j["tool_calls"][0]["type"], "function");
  EXPECT_EQ(j["tool_calls"][0]["function"]["name"], "bash");
  EXPECT_EQ(j["tool_calls"][0]["function"]["arguments"], "{\"command\": \"ls\"}");
  EXPECT_EQ(j["warnings"], nlohmann::json::array());
  // The same bytes whatever the chunk size.
  for (int n : {1, 2, 5, 64})
    EXPECT_EQ(warren("toolcall parse --seed 3 --chunk-bytes " + std::to_string(n), kCompletion).out,
              r.out);
}

TEST(Cli, ParseEventsAreJsonLines) {
  const Outcome r = warren("toolcall parse --events --chunk-bytes 4 --seed 3", kCompletion);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(nlohmann::json::parse(r.out.substr(start, nl - start)));
  ASSERT_GE(lines.size(), 5u);
  EXPECT_EQ(lines.front()["delta"]["reasoning_content"], "thin");
  EXPECT_EQ(lines.back(),
            nlohmann::json::parse(R"({"event":"done","finish_reason":"tool_calls"})"));
}

TEST(Cli, ParseFailureExitsOneWithOneLine) {
  const Outcome r = warren("toolcall parse --mode thinking", "no end of thinking");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err,
            "warren toolcall parse: missing </think>: the completion ended inside reasoning (at "
            "byte 18)\n");
  EXPECT_EQ(r.out, "");
  const Outcome lenient = warren("toolcall parse --mode thinking --lenient", "no end of thinking");
  EXPECT_EQ(lenient.status, 0);
  EXPECT_EQ(nlohmann::json::parse(lenient.out)["warnings"].size(), 1u);
}

TEST(Cli, ParseChecksCallsAgainstTools) {
  const std::string tools = ::testing::TempDir() + "/tools_" + std::to_string(getpid()) + ".json";
  std::ofstream(tools) << R"({"tools": [{"type": "function", "function": {"name": "bash",
    "parameters": {"type": "object", "properties": {"command": {"type": "integer"}}}}}]})";
  const Outcome r = warren("toolcall parse --tools " + tools, kCompletion);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tool_calls"][0]["errors"][0],
            "'command': expected integer, got string");
  const Outcome missing = warren("toolcall parse --tools /nonexistent/tools.json", kCompletion);
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(
      missing.err,
      "warren toolcall parse: cannot read /nonexistent/tools.json: No such file or directory\n");
}

TEST(Cli, DeeplyNestedToolsFileIsAnErrorNotACrash) {
  const std::string tools = ::testing::TempDir() + "/deep_" + std::to_string(getpid()) + ".json";
  std::ofstream(tools) << "{\"tools\": [{\"name\": \"f\", \"parameters\": "
                       << std::string(200000, '[') << std::string(200000, ']') << "}]}";
  const Outcome r = warren("toolcall parse --tools " + tools, kCompletion);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err, "warren toolcall parse: " + tools + ": JSON nested deeper than 512 levels\n");
}

TEST(Cli, BadFlagsExitTwo) {
  EXPECT_EQ(warren("toolcall parse --mode sideways", "").status, 2);
  EXPECT_EQ(warren("toolcall parse --chunk-bytes 0", "").status, 2);
  EXPECT_EQ(warren("toolcall frobnicate", "").status, 2);
  const Outcome none = warren("", "");
  EXPECT_EQ(none.status, 2);
}

}  // namespace
