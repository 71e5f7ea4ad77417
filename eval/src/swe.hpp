// SWE-bench style instances: the shell that prepares the checkout, the oracle's patch call, and
// grading as the SWE-bench harness does it (apply the prediction with fallbacks, reset the test
// files, apply the test patch, run, and require every FAIL_TO_PASS and PASS_TO_PASS test).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

// Printed by the grading command when the test patch does not apply: the instance cannot be
// graded, as the harness's "Patch Apply Failed".
inline constexpr const char* kSweTestPatchFailed = "@@warren the test patch did not apply";

// What SWE-bench's harness runs for a repository at a version (swe_specs.cpp).
struct SweSpec {
  std::string test_command;  // the test files are appended
  SweLogParser log_parser = SweLogParser::Pytest;
  std::vector<std::string> eval_commands;  // before the tests (Django's locale)
  std::string install;                     // the package installed again before the tests
};
// nullopt for a repository the harness does not know.
std::optional<SweSpec> swe_spec(const std::string& repo, const std::string& version);

// The official image of an instance: docker.io/swebench/sweb.eval.x86_64.ID:latest, the id in
// lower case and every "__" as "_1776_".
std::string swe_image_name(const std::string& instance_id);

// The test files the test patch touches (data files aside), as the test command takes them:
// paths, or for Django module names (tests/a/b.py -> a.b).
std::vector<std::string> swe_test_directives(const std::string& repo,
                                             const std::string& test_patch);

// The test log read by `parser`, as the harness reads it (swe_logs.cpp).
std::vector<TestResult> parse_swe_log(SweLogParser parser, const std::string& log);
std::optional<SweLogParser> swe_log_parser_named(const std::string& name);

// On an image: activates the instance's environment (conda's testbed) in the shell, where the
// image has one.
std::string swe_activate_command();

// Before the agent: on an image, activates its environment; else puts the checkout at the base
// commit, clean.
std::string swe_setup_command(const Task& task);

// The oracle's script: the gold patch applied with git apply.
std::string swe_oracle_script(const Task& task);

// Runs in the grading sandbox (the agent's final state, the test patch at /tests/test.patch).
// Prints the prediction between markers, then the test command's output.
std::string swe_grading_command(const Task& task);

// The prediction (the agent's diff against the base commit) from the grading output.
std::string swe_prediction(const std::string& output);

// Resolved when every FAIL_TO_PASS and PASS_TO_PASS test passed; `message` names the first that
// did not.
bool swe_resolved(const Task& task, const std::vector<TestResult>& results, std::string& message);

}  // namespace warren::eval::detail
