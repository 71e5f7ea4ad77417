// Tool schemas: the keywords tool definitions use, checked as problems the model can act on.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace warren::toolcall {
namespace {

ToolSet tools(const char* json) {
  auto set = ToolSet::from_json(Json::parse(json));
  if (!set) throw std::runtime_error(set.error().message);
  return std::move(*set);
}

TEST(ToolSet, ReadsOpenAiAndBareDefinitions) {
  const ToolSet t = tools(R"([{"type": "function", "function": {"name": "a"}}, {"name": "b"}])");
  EXPECT_TRUE(t.contains("a"));
  EXPECT_TRUE(t.contains("b"));
  EXPECT_FALSE(t.contains("c"));
  EXPECT_EQ(ToolSet::from_json(Json::parse(R"([{"type": "function"}])")).error().message,
            "tools[0]: expected {type: \"function\", function: {name, description, parameters}}");
}

TEST(ToolSet, NestedItemsAnyOfAndTypeLists) {
  const ToolSet t = tools(R"([{"name": "open", "parameters": {"type": "object",
    "properties": {"open_list": {"type": "array", "items": {"type": "object",
      "properties": {"id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                     "n": {"type": ["integer", "null"]}},
      "required": ["id"], "additionalProperties": false}}},
    "required": ["open_list"]}}])");
  EXPECT_TRUE(t.check_arguments(
                   "open", Json::parse(R"({"open_list": [{"id": 1}, {"id": "u", "n": null}]})"))
                  .empty());
  EXPECT_EQ(
      t.check_arguments("open", Json::parse(R"({"open_list": [{"id": 1.5}, {"n": "x"}, 3]})")),
      (std::vector<std::string>{"'open_list[0].id': matches none of the allowed forms",
                                "'open_list[1]': missing required field 'id'",
                                "'open_list[1].n': expected integer or null, got string",
                                "'open_list[2]': expected object, got integer"}));
  EXPECT_EQ(t.check_arguments("open", Json::parse(R"({"open_list": [{"id": 2, "extra": 1}]})")),
            std::vector<std::string>{"'open_list[0].extra': unknown field"});
}

TEST(ToolSet, IntegralFloatsAreIntegers) {
  const ToolSet t = tools(R"([{"name": "f", "parameters": {"type": "object",
    "properties": {"n": {"type": "integer"}, "c": {"const": "x"}}}}])");
  EXPECT_TRUE(t.check_arguments("f", Json::parse(R"({"n": 3.0, "c": "x"})")).empty());
  EXPECT_EQ(t.check_arguments("f", Json::parse(R"({"c": "y"})")),
            std::vector<std::string>{"'c': must be \"x\""});
}

}  // namespace
}  // namespace warren::toolcall
