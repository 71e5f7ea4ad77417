#include "swe.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "test_run.hpp"

namespace warren::eval::detail {

namespace {

constexpr const char* kPredictionStart = "@@warren prediction start\n";
constexpr const char* kPredictionEnd = "@@warren prediction end\n";

// A here-document that carries `text` unchanged, with a delimiter that does not occur in it.
std::string here_document(const std::string& command, const std::string& text) {
  std::string delimiter = "WARREN_PATCH";
  while (text.find(delimiter) != std::string::npos) delimiter += "_";
  std::string doc = command;
  doc += " <<'" + delimiter + "'\n";
  doc += text;
  if (!text.ends_with('\n')) doc += '\n';
  doc += delimiter + "\n";
  return doc;
}

// Only hex digits reach the shell as a commit.
std::string commit_of(const Task& task) {
  std::string commit;
  for (char c : task.swe.base_commit)
    if (std::isxdigit(static_cast<unsigned char>(c))) commit += c;
  return commit;
}

}  // namespace

std::string swe_setup_command(const Task& task) {
  // An instance's image has the repository at the base commit, its build done: left as it is.
  if (!task.environment.image_name.empty()) return swe_activate_command();
  return "git -c advice.detachedHead=false checkout -q -f " + commit_of(task) +
         " && git clean -fdq";
}

std::string swe_oracle_script(const Task& task) {
  return here_document("git apply -v", task.swe.patch);
}

std::string swe_activate_command() {
  return "if [ -f /opt/miniconda3/bin/activate ]; then . /opt/miniconda3/bin/activate && conda "
         "activate testbed; fi";
}

std::string swe_grading_command(const Task& task) {
  const std::string base = commit_of(task);
  const bool on_image = !task.environment.image_name.empty();
  std::string s;  // built with appends: GCC 12 warns falsely on long literal + string chains
  if (on_image) {
    s += swe_activate_command();
    s += '\n';
  }
  s += "cd ";
  s += orchestrator::shell_quote(task.environment.workdir);
  s += "\nscratch=$(mktemp -d)\n";
  // The prediction: everything the agent changed against the base commit, new files included.
  s += "GIT_INDEX_FILE=$scratch/index git add -A >/dev/null 2>&1\n";
  s += "GIT_INDEX_FILE=$scratch/index git diff --cached --binary ";
  s += base;
  s += " > $scratch/prediction.diff\n";
  s += "printf '@@warren prediction start\\n'; cat $scratch/prediction.diff; ";
  s += "printf '@@warren prediction end\\n'\n";
  // Applied to a clean checkout with the SWE-bench harness's fallbacks.
  s += "git reset -q --hard ";
  s += base;
  s += " && git clean -fdq\n";
  s += "if [ -s $scratch/prediction.diff ]; then\n";
  s += "  git apply -v $scratch/prediction.diff || git apply -v --reject $scratch/prediction.diff "
       "||\n";
  s += "    patch --batch --fuzz=5 -p1 -i $scratch/prediction.diff || ";
  s += "echo '@@warren the prediction did not apply'\n";
  s += "fi\n";
  if (on_image) {  // the harness's own steps for the repository and version
    for (const std::string& command : task.swe.eval_commands) s += command + "\n";
    s += "git config --global --add safe.directory ";
    s += orchestrator::shell_quote(task.environment.workdir);
    s += "\n";
    if (!task.swe.install.empty()) s += task.swe.install + "\n";
  }
  // The test files as they were at the base commit, then the test patch.
  s += "for f in $(git apply --numstat /tests/test.patch | cut -f3); do git checkout -q ";
  s += base;
  s += " -- \"$f\" 2>/dev/null; done\n";
  s += "git apply -v /tests/test.patch || echo '";
  s += kSweTestPatchFailed;
  s += "'\n";
  s += task.swe.test_command;
  if (on_image) {
    // The harness's directives; the log, kept beside the report, is what its parser reads.
    for (const std::string& d : swe_test_directives(task.swe.repo, task.swe.test_patch)) {
      s += ' ';
      s += orchestrator::shell_quote(d);
    }
    s += " 2>&1 | tee ";
    s += kReportDir;
    s += "/test_output.txt\n";
    return s;
  }
  // The test files the instance names, so that the run covers them and not the whole suite.
  std::set<std::string> files;
  for (const auto* ids : {&task.swe.fail_to_pass, &task.swe.pass_to_pass})
    for (const std::string& id : *ids) files.insert(id.substr(0, id.find("::")));
  for (const std::string& f : files) {
    s += ' ';
    s += orchestrator::shell_quote(f);
  }
  s += '\n';
  return s;
}

std::string swe_prediction(const std::string& output) {
  const auto start = output.find(kPredictionStart);
  const auto end = output.find(kPredictionEnd);
  if (start == std::string::npos || end == std::string::npos || end < start) return "";
  const auto from = start + std::char_traits<char>::length(kPredictionStart);
  return output.substr(from, end - from);
}

namespace {

bool passing(const std::string& status) {
  return status == "PASSED" || status == "XFAIL";
}

// The status of `id` in the log: its own, or for an id the dataset cut short inside its
// parameters (more '[' than ']': 676 of SWE-bench Verified's), the status of the ids it begins,
// when they agree on pass or fail (grading.py's _resolve_case). nullopt when it did not run.
std::optional<std::string> status_of(const std::string& id,
                                     const std::map<std::string, std::string>& statuses) {
  if (const auto found = statuses.find(id); found != statuses.end()) return found->second;
  if (std::count(id.begin(), id.end(), '[') <= std::count(id.begin(), id.end(), ']'))
    return std::nullopt;
  std::optional<std::string> first;
  for (auto at = statuses.lower_bound(id); at != statuses.end() && at->first.starts_with(id); ++at)
    if (!first)
      first = at->second;
    else if (passing(*first) != passing(at->second))
      return std::nullopt;
  return first;
}

}  // namespace

bool swe_resolved(const Task& task, const std::vector<TestResult>& results, std::string& message) {
  std::map<std::string, std::string> statuses;
  for (const TestResult& r : results) statuses[r.id] = r.status;
  // As grading.py decides: a FAIL_TO_PASS test must pass (PASSED or XFAIL); a skipped one is no
  // resolution. A PASS_TO_PASS test may also be skipped, which is no regression. One that did not
  // run, failed or errored fails either list.
  for (const bool fail_to_pass : {true, false})
    for (const std::string& id : fail_to_pass ? task.swe.fail_to_pass : task.swe.pass_to_pass) {
      const auto status = status_of(id, statuses);
      if (!status) {
        message = id + " did not run";
        return false;
      }
      const bool ok = passing(*status) || (!fail_to_pass && *status == "SKIPPED");
      const bool failed = *status == "FAILED" || *status == "ERROR" || *status == "SKIPPED";
      if (!ok && failed) {
        message = id + " " + *status;
        return false;
      }
    }
  return true;
}

}  // namespace warren::eval::detail
