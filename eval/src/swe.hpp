// SWE-bench style instances: the shell that prepares the checkout, the oracle's patch call, and
// grading as the SWE-bench harness does it (apply the prediction with fallbacks, reset the test
// files, apply the test patch, run, and require every FAIL_TO_PASS and PASS_TO_PASS test).
#pragma once

#include <string>
#include <vector>

#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

// Puts the checkout at the base commit, clean.
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
