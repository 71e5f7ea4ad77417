// pytest's JUnit XML report (--junitxml), read with tinyxml2: the out-of-band record of a test
// run, written by pytest to a file at the end of the session, where the program under test's
// output cannot stand in for it (docs/security.md).
#include <tinyxml2.h>

#include <algorithm>

#include "warren/orchestrator/eval.hpp"

namespace warren::orchestrator::eval {

namespace {

std::string attribute(const tinyxml2::XMLElement& e, const char* name) {
  const char* value = e.Attribute(name);
  return value ? value : "";
}

// pytest's node id from a testcase: `file` and `name`, with the classes between them taken from
// `classname` past the module's dotted path (tests/test_x.py -> tests.test_x).
std::string node_id(const tinyxml2::XMLElement& testcase) {
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
  tinyxml2::XMLDocument document;
  if (document.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS) return std::nullopt;
  const tinyxml2::XMLElement* top = document.RootElement();
  if (!top) return std::nullopt;
  // <testsuites><testsuite>... (pytest 5.1 and later), or a lone <testsuite>.
  std::vector<const tinyxml2::XMLElement*> suites;
  if (std::string_view(top->Name()) == "testsuite") suites.push_back(top);
  for (auto* s = top->FirstChildElement("testsuite"); s; s = s->NextSiblingElement("testsuite"))
    suites.push_back(s);
  if (suites.empty()) return std::nullopt;
  std::vector<TestResult> results;
  for (const auto* suite : suites)
    for (auto* t = suite->FirstChildElement("testcase"); t; t = t->NextSiblingElement("testcase")) {
      std::string status = "PASSED";
      if (t->FirstChildElement("failure")) status = "FAILED";
      if (t->FirstChildElement("error")) status = "ERROR";
      if (const auto* skipped = t->FirstChildElement("skipped"))
        status = attribute(*skipped, "type") == "pytest.xfail" ? "XFAIL" : "SKIPPED";
      const std::string id = node_id(*t);
      const std::size_t colons = id.find("::");
      results.push_back({id, colons == std::string::npos ? id : id.substr(colons + 2), status});
    }
  return results;
}

}  // namespace warren::orchestrator::eval
