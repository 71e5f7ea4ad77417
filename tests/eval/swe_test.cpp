// SWE-bench instances on their images: the harness's per-repository specifications, the official
// image names, the test files a test patch names, and the harness's log parsers, each checked
// against output in the shape its test runner prints. These reach eval/src's private header: the
// parsers' quirks are the harness's, and each is pinned here.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "swe.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using detail::parse_swe_log;

std::map<std::string, std::string> statuses(SweLogParser parser, const std::string& log) {
  std::map<std::string, std::string> out;
  for (const TestResult& r : parse_swe_log(parser, log)) out[r.id] = r.status;
  return out;
}

using Statuses = std::map<std::string, std::string>;

TEST(SweLogs, PytestReadsTheShortSummaryAsTheHarnessDoes) {
  const std::string log =
      "============ short test summary info ============\n"
      "PASSED tests/test_a.py::test_one\n"
      "FAILED tests/test_a.py::test_two - AssertionError: 1 - 2\n"
      "SKIPPED [2] tests/test_a.py:10: no network\n"
      "ERROR tests/test_a.py::test_three\n"
      "XFAIL tests/test_a.py::test_four - known\n"
      "PASSED\n"
      "tests/test_a.py::test_five PASSED\n";
  EXPECT_EQ(statuses(SweLogParser::Pytest, log),
            (Statuses{{"tests/test_a.py::test_one", "PASSED"},
                      {"tests/test_a.py::test_two", "FAILED"},
                      {"tests/test_a.py::test_three", "ERROR"},
                      {"tests/test_a.py::test_four", "XFAIL"}}));
}

TEST(SweLogs, PytestOptionsKeepsOnlyAPathOptionsLastPart) {
  const std::string log =
      "PASSED tests/test_functional.py::test_functional[/testbed/tests/data/recursion.py]\n"
      "PASSED tests/test_x.py::test_url[//host/a/b]\n"
      "FAILED tests/test_x.py::test_glob[/a/*/b] - boom\n"
      "PASSED tests/test_x.py::test_plain\n";
  EXPECT_EQ(statuses(SweLogParser::PytestOptions, log),
            (Statuses{{"tests/test_functional.py::test_functional[/recursion.py]", "PASSED"},
                      {"tests/test_x.py::test_url[//host/a/b]", "PASSED"},
                      {"tests/test_x.py::test_glob[/a/*/b]", "FAILED"},
                      {"tests/test_x.py::test_plain", "PASSED"}}));
}

TEST(SweLogs, PytestV2DropsColoursAndReadsStatusesAtEitherEnd) {
  const std::string log =
      "\x1b[32mPASSED\x1b[0m astropy/io/tests/test_x.py::test_a\n"
      "FAILED astropy/io/tests/test_x.py::test_b[a - b] - assert 1 - 2\n"
      "astropy/io/tests/test_x.py::test_c PASSED\n"
      "sklearn/tests/test_y.py::test_d[param one] FAILED\n"
      "SKIPPED [1] astropy/io/tests/test_x.py:3: skip\n";
  EXPECT_EQ(statuses(SweLogParser::PytestV2, log),
            (Statuses{{"astropy/io/tests/test_x.py::test_a", "PASSED"},
                      {"astropy/io/tests/test_x.py::test_b[a", "FAILED"},
                      {"astropy/io/tests/test_x.py::test_c", "PASSED"},
                      {"sklearn/tests/test_y.py::test_d[param one]", "FAILED"}}));
}

TEST(SweLogs, DjangosRunnerLinesAndTheirInterruptions) {
  const std::string log =
      "test_a (admin_views.tests.AdminViewTests) ... ok\n"
      "test_b (admin_views.tests.AdminViewTests) ... FAIL\n"
      "  test_c (admin_views.tests.AdminViewTests) ... ERROR\n"
      "test_d (admin_views.tests.AdminViewTests) ... skipped 'no database'\n"
      "test_e (admin_views.tests.AdminViewTests) ... Testing against Django installed in "
      "'/testbed/django'\n"
      "System check identified no issues (0 silenced).\n"
      "ok\n"
      "test_f (admin_views.tests.AdminViewTests)\n"
      "Docstring of f. ... OK\n"
      "======================================================================\n"
      "FAIL: test_b (admin_views.tests.AdminViewTests)\n"
      "ERROR:\n";
  EXPECT_EQ(statuses(SweLogParser::Django, log),
            (Statuses{{"test_a (admin_views.tests.AdminViewTests)", "PASSED"},
                      {"test_b (admin_views.tests.AdminViewTests)", "FAILED"},
                      {"test_b", "FAILED"},
                      {"test_c (admin_views.tests.AdminViewTests)", "ERROR"},
                      {"test_d (admin_views.tests.AdminViewTests)", "SKIPPED"},
                      {"test_e (admin_views.tests.AdminViewTests)", "PASSED"},
                      {"Docstring of f.", "PASSED"}}));
}

TEST(SweLogs, SympysVerboseLinesAndFailureHeaders) {
  const std::string log =
      "============================= test process starts ==============================\n"
      "sympy/core/tests/test_basic.py[3] \n"
      "test_one ok\n"
      "test_two F\n"
      "test_three E\n"
      "________________________________________________________________________________\n"
      "_________ sympy/core/tests/test_basic.py:test_four _________\n";
  EXPECT_EQ(statuses(SweLogParser::Sympy, log),
            (Statuses{{"test_one", "PASSED"},
                      {"test_two", "FAILED"},
                      {"test_three", "ERROR"},
                      {"sympy/core/tests/test_basic.py:test_four", "FAILED"}}));
}

TEST(SweLogs, SeabornAndMatplotlib) {
  EXPECT_EQ(statuses(SweLogParser::Seaborn,
                     "tests/test_core.py::TestA::test_b PASSED         [ 50%]\n"
                     "FAILED tests/test_core.py::test_c - AssertionError\n"
                     "PASSED tests/test_core.py::test_d\n"),
            (Statuses{{"tests/test_core.py::TestA::test_b", "PASSED"},
                      {"tests/test_core.py::test_c", "FAILED"},
                      {"tests/test_core.py::test_d", "PASSED"}}));
  EXPECT_EQ(statuses(SweLogParser::Matplotlib,
                     "PASSED lib/matplotlib/tests/test_widgets.py::test_span[MouseButton.LEFT]\n"
                     "FAILED lib/matplotlib/tests/test_widgets.py::test_span[MouseButton.RIGHT]\n"),
            (Statuses{{"lib/matplotlib/tests/test_widgets.py::test_span[1]", "PASSED"},
                      {"lib/matplotlib/tests/test_widgets.py::test_span[3]", "FAILED"}}));
}

TEST(SweSpecs, TheHarnesssCommandsByRepositoryAndVersion) {
  auto django19 = detail::swe_spec("django/django", "1.9");
  ASSERT_TRUE(django19);
  EXPECT_EQ(django19->test_command, "./tests/runtests.py --verbosity 2");
  EXPECT_EQ(django19->install, "python setup.py install");
  EXPECT_EQ(django19->eval_commands.size(), 4u);
  auto django40 = detail::swe_spec("django/django", "4.0");
  ASSERT_TRUE(django40);
  EXPECT_EQ(django40->test_command,
            "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1");
  EXPECT_EQ(django40->log_parser, SweLogParser::Django);
  EXPECT_TRUE(django40->eval_commands.empty());
  EXPECT_EQ(django40->install, "python -m pip install -e .");
  EXPECT_EQ(detail::swe_spec("astropy/astropy", "1.3")->test_command,
            "pytest -rA -vv -o console_output_style=classic --tb=no");
  EXPECT_EQ(detail::swe_spec("astropy/astropy", "5.1")->test_command, "pytest -rA");
  EXPECT_EQ(detail::swe_spec("sympy/sympy", "1.12")->log_parser, SweLogParser::Sympy);
  EXPECT_EQ(detail::swe_spec("psf/requests", "2.0")->log_parser, SweLogParser::PytestOptions);
  EXPECT_EQ(detail::swe_spec("sphinx-doc/sphinx", "7.1")->test_command,
            "tox --current-env -epy39 -v --");
  EXPECT_FALSE(detail::swe_spec("someone/else", "1.0"));
}

TEST(SweSpecs, TheOfficialImageNames) {
  EXPECT_EQ(detail::swe_image_name("django__django-11099"),
            "docker.io/swebench/sweb.eval.x86_64.django_1776_django-11099:latest");
  EXPECT_EQ(detail::swe_image_name("Foo__Bar___x"),
            "docker.io/swebench/sweb.eval.x86_64.foo_1776_bar_1776__x:latest");
}

TEST(SweSpecs, TheTestFilesATestPatchNames) {
  const std::string patch =
      "diff --git a/tests/admin_views/tests.py b/tests/admin_views/tests.py\n"
      "--- a/tests/admin_views/tests.py\n+++ b/tests/admin_views/tests.py\n"
      "diff --git a/tests/admin_views/fixtures/data.json b/tests/admin_views/fixtures/data.json\n"
      "diff --git a/tests/forms/test_a.py b/tests/forms/test_a.py\n";
  EXPECT_EQ(detail::swe_test_directives("django/django", patch),
            (std::vector<std::string>{"admin_views.tests", "forms.test_a"}));
  EXPECT_EQ(detail::swe_test_directives("sympy/sympy", patch),
            (std::vector<std::string>{"tests/admin_views/tests.py", "tests/forms/test_a.py"}));
}

// Resolution as grading.py decides it: FAIL_TO_PASS must pass (a skip is no fix); PASS_TO_PASS may
// also be skipped; an id the dataset cut short inside its parameters takes the status of the ids
// it begins when they agree.
TEST(SweGrading, ResolvedAsTheHarnessDecides) {
  Task task;
  task.swe.fail_to_pass = {"t.py::test_fix", "t.py::test_cut[log(photon"};
  task.swe.pass_to_pass = {"t.py::test_old"};
  auto resolved = [&](const std::vector<TestResult>& results, std::string& why) {
    return detail::swe_resolved(task, results, why);
  };
  std::string why;
  const TestResult cut_a{"t.py::test_cut[log(photon)-a]", "", "PASSED"};
  const TestResult cut_b{"t.py::test_cut[log(photon)-b]", "", "XFAIL"};
  EXPECT_TRUE(resolved(
      {{"t.py::test_fix", "", "PASSED"}, cut_a, cut_b, {"t.py::test_old", "", "SKIPPED"}}, why))
      << why;
  EXPECT_FALSE(
      resolved({{"t.py::test_fix", "", "SKIPPED"}, cut_a, {"t.py::test_old", "", "PASSED"}}, why));
  EXPECT_EQ(why, "t.py::test_fix SKIPPED");
  EXPECT_FALSE(resolved({{"t.py::test_fix", "", "PASSED"},
                         cut_a,
                         {"t.py::test_cut[log(photon)-c]", "", "FAILED"},
                         {"t.py::test_old", "", "PASSED"}},
                        why));
  EXPECT_EQ(why, "t.py::test_cut[log(photon did not run");  // the ids it begins disagree
  EXPECT_FALSE(resolved({{"t.py::test_fix", "", "PASSED"}, cut_a}, why));
  EXPECT_EQ(why, "t.py::test_old did not run");
}

// An instance with no local checkout runs on its image, with the harness's commands for its
// repository and version; what it names instead is taken, and what is wrong is its load error.
TEST(SweInstances, WithoutACheckoutAnInstanceRunsOnItsImage) {
  const fs::path dir = fs::temp_directory_path() / ("warren-swe-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const Json common = {{"repo", "django/django"},
                       {"base_commit", "abc123"},
                       {"problem_statement", "p"},
                       {"FAIL_TO_PASS", "[\"test_a (x.Y)\"]"}};
  Json official = common, named = common, bad = common, unknown = common;
  official["instance_id"] = "django__django-1";
  official["version"] = "3.0";
  named["instance_id"] = "django__django-2";
  named["image"] = "registry.example/mine:1";
  named["test_command"] = "./run";
  named["log_parser"] = "pytest_v2";
  bad["instance_id"] = "django__django-3";
  bad["log_parser"] = "junit";
  unknown["instance_id"] = "o__r-4";
  unknown["repo"] = "o/r";
  std::ofstream(dir / "i.json") << Json::array({official, named, bad, unknown}).dump();
  auto suite = load_suite((dir / "i.json").string());
  fs::remove_all(dir);
  ASSERT_TRUE(suite) << suite.error().message;
  ASSERT_EQ(suite->size(), 4u);
  const Task& a = (*suite)[0];
  EXPECT_EQ(a.load_error, "");
  EXPECT_EQ(a.environment.image_name,
            "docker.io/swebench/sweb.eval.x86_64.django_1776_django-1:latest");
  EXPECT_EQ(a.environment.workdir, "/testbed");
  EXPECT_EQ(a.swe.version, "3.0");
  EXPECT_EQ(a.swe.test_command,
            "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1");
  EXPECT_EQ(a.swe.log_parser, SweLogParser::Django);
  EXPECT_EQ(a.swe.eval_commands.front(),
            "sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen");
  const Task& b = (*suite)[1];
  EXPECT_EQ(b.environment.image_name, "registry.example/mine:1");
  EXPECT_EQ(b.swe.test_command, "./run");
  EXPECT_EQ(b.swe.log_parser, SweLogParser::PytestV2);
  EXPECT_EQ((*suite)[2].load_error,
            "unknown log_parser 'junit' (pytest, pytest_options, pytest_v2, django, sympy, "
            "seaborn or matplotlib)");
  const Task& d = (*suite)[3];
  EXPECT_EQ(d.load_error, "");
  EXPECT_EQ(d.swe.test_command, "pytest -rA");
  EXPECT_EQ(d.swe.log_parser, SweLogParser::Pytest);
}

}  // namespace
}  // namespace warren::eval
