// Python-compatible JSON output and the non-recursive JSON checker.
#include <gtest/gtest.h>

#include "json_check.hpp"
#include "python_json.hpp"

namespace warren::toolcall::detail {
namespace {

std::string py_float(double d) {
  std::string s;
  append_python_float(d, s);
  return s;
}

TEST(PythonJson, FloatsAsPythonRepr) {
  // Expected strings are what CPython's repr() prints for these values.
  EXPECT_EQ(py_float(1.0), "1.0");
  EXPECT_EQ(py_float(-0.0), "-0.0");
  EXPECT_EQ(py_float(1.5), "1.5");
  EXPECT_EQ(py_float(0.1), "0.1");
  EXPECT_EQ(py_float(0.0001), "0.0001");
  EXPECT_EQ(py_float(0.00001), "1e-05");
  EXPECT_EQ(py_float(1.5e-7), "1.5e-07");
  EXPECT_EQ(py_float(1e15), "1000000000000000.0");
  EXPECT_EQ(py_float(1e16), "1e+16");
  EXPECT_EQ(py_float(1.2345e20), "1.2345e+20");
  EXPECT_EQ(py_float(123456.789), "123456.789");
  EXPECT_EQ(py_float(1e300), "1e+300");
  EXPECT_EQ(py_float(2.5e-300), "2.5e-300");
}

TEST(PythonJson, ObjectsKeepOrderAndUsePythonSeparators) {
  const Json v = Json::parse(R"({"b": [1, 2.0, {"x": null}], "a": "é\n\"\\\u0001", "t": true})");
  EXPECT_EQ(python_json(v),
            "{\"b\": [1, 2.0, {\"x\": null}], \"a\": \"é\\n\\\"\\\\\\u0001\", "
            "\"t\": true}");
  EXPECT_EQ(python_json(Json::array()), "[]");
  EXPECT_EQ(python_json(Json::object()), "{}");
  EXPECT_EQ(python_json(Json(-17)), "-17");
  EXPECT_EQ(python_json(Json(18446744073709551615ULL)), "18446744073709551615");
}

TEST(PythonJson, DeepNestingDoesNotRecurse) {
  Json v = Json::array();
  Json* cur = &v;
  for (int i = 0; i < 100000; ++i) {
    cur->push_back(Json::array());
    cur = &(*cur)[0];
  }
  const std::string s = python_json(v);
  EXPECT_EQ(s.size(), 200002u);
  EXPECT_EQ(s.substr(0, 3), "[[[");
}

TEST(JsonCheck, AcceptsValidJson) {
  for (const char* ok : {"0", "-1.5e+3", " true ", "null", "\"a\\u00e9\\n\"", "[]", "{}",
                         "{\"a\": [1, {\"b\": \"c\"}]}", "\"中文\""}) {
    EXPECT_TRUE(check_json(ok).valid) << ok;
  }
}

TEST(JsonCheck, RejectsInvalidJsonWithOffset) {
  struct Case {
    const char* text;
    const char* problem;
    std::size_t at;
  };
  for (const Case& c :
       {Case{"", "unexpected end of JSON", 0}, Case{"{\"a\" 1}", "expected ':'", 5},
        Case{"[1,]", "expected a JSON value", 3},
        Case{"01", "unexpected text after the JSON value", 1},
        Case{"\"C:\\Users\"", "invalid escape in string", 3},
        Case{"\"a\nb\"", "raw control character in string", 2},
        Case{"[1 2]", "expected ',' or ']'", 3}, Case{"{\"a\":1", "unexpected end of JSON", 6},
        Case{"\"\xff\"", "invalid UTF-8 in string", 1},
        Case{"1.", "invalid number: digits expected after '.'", 2}}) {
    const JsonCheck r = check_json(c.text);
    EXPECT_FALSE(r.valid) << c.text;
    EXPECT_EQ(r.problem, c.problem) << c.text;
    EXPECT_EQ(r.at, c.at) << c.text;
  }
}

TEST(JsonCheck, RepairsBadEscapesAndControlCharacters) {
  std::string fixed;
  const JsonCheck r = check_json("{\"path\": \"C:\\Users\\me\", \"s\": \"a\tb\"}", &fixed);
  EXPECT_TRUE(r.valid);
  EXPECT_EQ(r.repairs, 3u);
  EXPECT_EQ(fixed, "{\"path\": \"C:\\\\Users\\\\me\", \"s\": \"a\\tb\"}");
  EXPECT_EQ(Json::parse(fixed)["path"], "C:\\Users\\me");
}

TEST(JsonCheck, HundredThousandLevelsWithoutRecursion) {
  std::string deep(100000, '[');
  deep.append(100000, ']');
  EXPECT_TRUE(check_json(deep).valid);
  deep.pop_back();
  EXPECT_FALSE(check_json(deep).valid);
}

}  // namespace
}  // namespace warren::toolcall::detail
