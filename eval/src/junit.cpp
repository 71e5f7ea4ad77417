// Test reports written to a file at the end of a test run: the out-of-band record of it, where the
// program under test's output cannot stand in for it (docs/security.md). pytest's JUnit XML report
// (--junitxml), read with Boost.PropertyTree's XML parser (header-only, so `warren` links
// statically; see cli/CMakeLists.txt), and a CTRF report (Harbor's `--ctrf`).
#include <algorithm>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <sstream>

#include "warren/eval/eval.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::eval {

namespace {

namespace pt = boost::property_tree;

// An element's attributes are the parser's "<xmlattr>" child.
std::string attribute(const pt::ptree& e, const std::string& name) {
  return e.get<std::string>("<xmlattr>." + name, "");
}

// The children of `e` named `name`, in document order.
std::vector<const pt::ptree*> children(const pt::ptree& e, const std::string& name) {
  std::vector<const pt::ptree*> out;
  for (const auto& [key, child] : e)
    if (key == name) out.push_back(&child);
  return out;
}

// pytest's node id from a testcase: `file` and `name`, with the classes between them taken from
// `classname` past the module's dotted path (tests/test_x.py -> tests.test_x).
std::string node_id(const pt::ptree& testcase) {
  const std::string name = attribute(testcase, "name");
  const std::string classname = attribute(testcase, "classname");
  std::string file = attribute(testcase, "file");
  if (file.empty()) {  // the xunit2 family has no file: the classname's path is the best guess
    std::string path = classname;
    std::replace(path.begin(), path.end(), '.', '/');
    return (path.empty() ? "" : path + ".py::") + name;
  }
  std::string module = file.ends_with(".py") ? file.substr(0, file.size() - 3) : file;
  std::replace(module.begin(), module.end(), '/', '.');
  std::string id = file;
  if (classname.size() > module.size() + 1 && classname.starts_with(module + ".")) {
    std::string classes = classname.substr(module.size() + 1);
    for (std::size_t dot; (dot = classes.find('.')) != std::string::npos;)
      classes.replace(dot, 1, "::");
    id += "::" + classes;
  }
  return id + "::" + name;
}

}  // namespace

std::optional<std::vector<TestResult>> parse_junit_report(const std::string& xml) {
  pt::ptree document;
  std::istringstream in(xml);
  try {
    pt::read_xml(in, document, pt::xml_parser::no_comments);
  } catch (const pt::xml_parser_error&) {
    return std::nullopt;
  }
  // The root element: the one child that is not a declaration ("<xml...>" keys are the parser's).
  const pt::ptree* top = nullptr;
  std::string top_name;
  for (const auto& [key, child] : document)
    if (!key.starts_with("<")) {
      top = &child;
      top_name = key;
      break;
    }
  if (!top) return std::nullopt;
  // <testsuites><testsuite>... (pytest 5.1 and later), or a lone <testsuite>.
  std::vector<const pt::ptree*> suites;
  if (top_name == "testsuite") suites.push_back(top);
  for (const pt::ptree* s : children(*top, "testsuite")) suites.push_back(s);
  if (suites.empty()) return std::nullopt;
  std::vector<TestResult> results;
  for (const pt::ptree* suite : suites)
    for (const pt::ptree* t : children(*suite, "testcase")) {
      std::string status = "PASSED";
      if (t->find("failure") != t->not_found()) status = "FAILED";
      if (t->find("error") != t->not_found()) status = "ERROR";
      if (auto skipped = t->find("skipped"); skipped != t->not_found())
        status = attribute(skipped->second, "type") == "pytest.xfail" ? "XFAIL" : "SKIPPED";
      const std::string id = node_id(*t);
      const std::size_t colons = id.find("::");
      results.push_back({id, colons == std::string::npos ? id : id.substr(colons + 2), status});
    }
  return results;
}

std::optional<std::vector<TestResult>> parse_ctrf_report(const std::string& json) {
  auto parsed = toolcall::parse_json(json);
  if (!parsed || !parsed->is_object() || !parsed->contains("results")) return std::nullopt;
  const auto& results = (*parsed)["results"];
  if (!results.is_object() || !results.contains("tests") || !results["tests"].is_array())
    return std::nullopt;
  std::vector<TestResult> tests;
  for (const auto& test : results["tests"]) {
    if (!test.is_object() || !test.contains("name") || !test["name"].is_string()) continue;
    const std::string id = test["name"].get<std::string>();
    const std::string status = test.value("status", "other");
    std::string ours = "ERROR";  // "other", or a status the format does not name
    if (status == "passed") ours = "PASSED";
    if (status == "failed") ours = "FAILED";
    if (status == "skipped" || status == "pending") ours = "SKIPPED";
    const std::size_t colons = id.find("::");
    tests.push_back({id, colons == std::string::npos ? id : id.substr(colons + 2), ours});
  }
  return tests;
}

}  // namespace warren::eval
