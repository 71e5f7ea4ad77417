// How a task's tests run and what they report: the command its own harness runs, the offline
// stand-ins for the network steps in it, the run in the agent's own session (tasks on an image),
// and reading the results as data from folders the sandbox wrote. trial.cpp's grading uses these.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

// Where pytest writes its JUnit report in the grading sandbox (PYTEST_ADDOPTS reaches every
// pytest that run-tests.sh starts, uv's included).
inline constexpr const char* kReportDir = "/logs/warren";
// Where the offline stand-ins appear, first on PATH: writable in every root, a mount point.
inline constexpr const char* kOfflineBin = "/run/warren-offline";

struct Grading {
  sandbox::ExecResult result;
  std::string problem;  // why the tests could not run; empty when they did
  std::string output() const { return result.stdout_data + result.stderr_data; }
};

// What runs the tests: the task's own script, as its harness runs it. Its network steps
// (installing uv, a pinned pytest) meet the offline stand-ins (install_offline_tools).
std::string grading_command(const Task& task);

// The environment the stand-ins need: first on PATH, and pip set to find nothing to fetch.
void set_offline_env(std::vector<std::string>& env);

// The stand-ins for test scripts' network steps (configs/offline/warren-offline), written into
// the trial's folder under each name they stand in for and mounted read-only at kOfflineBin in
// the grading sandbox `grading`, with set_offline_env's environment.
sandbox::Result<void> install_offline_tools(const std::filesystem::path& trial_dir,
                                            sandbox::Policy& grading);

// Terminal-Bench and Harbor tasks on an image: the tests (the trial's copy at `tests`) run in the
// agent's own session once the agent has ended, as those harnesses run them in the agent's
// container, so that what the agent started (a server) is still up. `policy` is the session's.
// They go in only now, through the file API (resolved inside the sandbox: a link the agent left
// at /tests cannot send them anywhere else), with the stand-ins. nullopt when the session has
// ended or cannot take them: a fresh sandbox grades then. `stand_ins`: the offline stand-ins go
// in (uses_stand_ins says when).
boost::asio::awaitable<std::optional<Grading>> run_tests_in_session(
    const Task& task, const std::filesystem::path& tests, const sandbox::Policy& policy,
    std::chrono::milliseconds timeout, sandbox::Session& session, bool stand_ins);

// Copies what the tests reported, from the trial's root on the host (read beneath it, as data)
// into the verifier folder, once every process of the sandbox has ended.
void collect_reports(const Task& task, const std::filesystem::path& root,
                     const std::filesystem::path& verifier_dir);

// Harbor's reward, read from the verifier folder after the tests' sandbox has ended.
std::optional<double> read_reward(const std::filesystem::path& verifier_dir);

// pytest's JUnit report, read from the results folder after the tests' sandbox has ended.
std::optional<std::vector<TestResult>> read_test_report(const std::filesystem::path& results_dir);

// The test log a SWE-bench instance's grading kept in the results folder (test_output.txt), read
// after its sandbox has ended, as data.
std::optional<std::string> read_test_log(const std::filesystem::path& results_dir);

}  // namespace warren::eval::detail
