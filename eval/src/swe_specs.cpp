// SWE-bench's per-repository test specifications, the image an instance runs on, and the test
// files a test patch names, as the official harness has them (SWE-bench/SWE-bench,
// swebench/harness/constants/python.py and test_spec/python.py, before the 2025 restructure:
// MAP_REPO_VERSION_TO_SPECS's "test_cmd", "eval_commands" and "install", and
// get_test_directives). Only the facts are carried over; the table is this file's own.
#include <array>
#include <cctype>
#include <optional>
#include <sstream>

#include "swe.hpp"

namespace warren::eval::detail {

namespace {

// The harness's constants. Its python.py defines TEST_PYTEST twice; the second, "pytest -rA",
// is the one every spec gets.
constexpr const char* kPytest = "pytest -rA";
constexpr const char* kAstropyOld = "pytest -rA -vv -o console_output_style=classic --tb=no";
constexpr const char* kDjango =
    "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1";
constexpr const char* kSeaborn = "pytest --no-header -rA";
constexpr const char* kSphinx = "tox --current-env -epy39 -v --";
constexpr const char* kSympy =
    "PYTHONWARNINGS='ignore::UserWarning,ignore::SyntaxWarning' bin/test -C --verbose";
constexpr const char* kEditable = "python -m pip install -e .";

// Django's locale settings, which its test runner's output depends on.
const std::vector<std::string> kDjangoLocale = {
    "export LANG=en_US.UTF-8", "export LC_ALL=en_US.UTF-8", "export PYTHONIOENCODING=utf8",
    "export LANGUAGE=en_US:en"};
const std::vector<std::string> kDjangoLocaleGen = {
    "sed -i '/en_US.UTF-8/s/^# //g' /etc/locale.gen && locale-gen", "export LANG=en_US.UTF-8",
    "export LANGUAGE=en_US:en", "export LC_ALL=en_US.UTF-8"};

// One row per repository and group of versions that share a specification; the first row of a
// repository whose versions hold the instance's (or that lists none) applies.
struct SpecRow {
  const char* repo;
  const char* versions;  // space-separated; "" for every other version
  SweSpec spec;
};

const std::vector<SpecRow>& spec_rows() {
  using P = SweLogParser;
  static const std::vector<SpecRow> rows = {
      {"astropy/astropy",
       "0.1 0.2 0.3 0.4 1.1 1.2 1.3",
       {kAstropyOld, P::PytestV2, {}, "python -m pip install -e .[test] --verbose"}},
      {"astropy/astropy",
       "",
       {kPytest, P::PytestV2, {}, "python -m pip install -e .[test] --verbose"}},
      {"django/django",
       "1.9",
       {"./tests/runtests.py --verbosity 2", P::Django, kDjangoLocale, "python setup.py install"}},
      {"django/django", "1.4 1.5 1.6", {kDjango, P::Django, {}, "python setup.py install"}},
      {"django/django",
       "1.7 1.8 1.10 1.11 2.0 2.1 2.2",
       {kDjango, P::Django, kDjangoLocale, "python setup.py install"}},
      {"django/django", "3.0 3.1 3.2", {kDjango, P::Django, kDjangoLocaleGen, kEditable}},
      {"django/django", "", {kDjango, P::Django, {}, kEditable}},
      {"matplotlib/matplotlib",
       "3.8 3.9",
       {kPytest, P::Matplotlib, {}, "python -m pip install --no-build-isolation -e \".[dev]\""}},
      {"matplotlib/matplotlib",
       "1.0 1.1 1.2 1.3 1.4 1.5 2.0 2.1 2.2",
       {kPytest, P::Matplotlib, {}, "python setup.py build; python setup.py install"}},
      {"matplotlib/matplotlib", "", {kPytest, P::Matplotlib, {}, kEditable}},
      {"marshmallow-code/marshmallow",
       "",
       {kPytest, P::Pytest, {}, "python -m pip install -e '.[dev]'"}},
      {"mwaskom/seaborn", "0.11", {kSeaborn, P::Seaborn, {}, kEditable}},
      {"mwaskom/seaborn", "", {kSeaborn, P::Seaborn, {}, "python -m pip install -e .[dev]"}},
      {"pallets/flask", "", {kPytest, P::Pytest, {}, kEditable}},
      {"psf/requests", "", {kPytest, P::PytestOptions, {}, "python -m pip install ."}},
      {"pvlib/pvlib-python", "", {kPytest, P::Pytest, {}, "python -m pip install -e .[all]"}},
      {"pydata/xarray", "", {kPytest, P::Pytest, {}, kEditable}},
      {"pydicom/pydicom", "", {kPytest, P::PytestOptions, {}, kEditable}},
      {"pylint-dev/astroid", "", {kPytest, P::Pytest, {}, kEditable}},
      {"pylint-dev/pylint", "", {kPytest, P::PytestOptions, {}, kEditable}},
      {"pytest-dev/pytest", "", {kPytest, P::Pytest, {}, kEditable}},
      {"pyvista/pyvista", "", {kPytest, P::Pytest, {}, kEditable}},
      {"scikit-learn/scikit-learn",
       "",
       {kPytest,
        P::PytestV2,
        {},
        "python -m pip install -v --no-use-pep517 --no-build-isolation -e ."}},
      {"sphinx-doc/sphinx", "", {kSphinx, P::PytestV2, {}, "python -m pip install -e .[test]"}},
      {"sqlfluff/sqlfluff", "", {kPytest, P::Pytest, {}, kEditable}},
      {"sympy/sympy", "", {kSympy, P::Sympy, {}, kEditable}},
  };
  return rows;
}

bool lists(const std::string& versions, const std::string& version) {
  std::istringstream words(versions);
  for (std::string v; words >> v;)
    if (v == version) return true;
  return false;
}

// The harness's NON_TEST_EXTS: files a test patch touches that are not tests to run. "csv" has
// no dot there, and is kept so.
bool is_test_file(const std::string& path) {
  static const std::array<const char*, 11> kNotTests = {
      ".json", ".png", "csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml"};
  for (const char* ext : kNotTests)
    if (path.ends_with(ext)) return false;
  return true;
}

}  // namespace

std::optional<SweSpec> swe_spec(const std::string& repo, const std::string& version) {
  for (const SpecRow& row : spec_rows())
    if (repo == row.repo && (*row.versions == '\0' || lists(row.versions, version)))
      return row.spec;
  return std::nullopt;
}

std::string swe_image_name(const std::string& instance_id) {
  std::string name = "docker.io/swebench/sweb.eval.x86_64.";
  for (char c : instance_id) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  name += ":latest";
  // The harness replaces "__" in the whole remote name (Docker Hub's names allow no "__").
  // One pass, left to right, as Python's str.replace goes.
  for (std::size_t at = 0; (at = name.find("__", at)) != std::string::npos; at += 6)
    name.replace(at, 2, "_1776_");
  return name;
}

std::vector<std::string> swe_test_directives(const std::string& repo,
                                             const std::string& test_patch) {
  std::vector<std::string> directives;
  std::istringstream lines(test_patch);
  for (std::string line; std::getline(lines, line);) {
    // "diff --git a/X b/X": the path after the last " b/", as the harness's greedy pattern reads
    // it.
    if (!line.starts_with("diff --git a/")) continue;
    const std::size_t b = line.rfind(" b/");
    if (b == std::string::npos || b < 12) continue;
    std::string path = line.substr(b + 3);
    if (!is_test_file(path)) continue;
    if (repo == "django/django") {  // a module name: tests/a/b.py -> a.b
      if (path.ends_with(".py")) path.resize(path.size() - 3);
      if (path.starts_with("tests/")) path.erase(0, 6);
      for (char& c : path)
        if (c == '/') c = '.';
    }
    directives.push_back(path);
  }
  return directives;
}

}  // namespace warren::eval::detail
