// warren/eval: batch evaluation over task suites (Terminal-Bench, Harbor,
// SWE-bench style), without Docker. Formats: docs/eval-formats.md and docs/harness.md.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::eval {

// The orchestrator's vocabulary: an evaluation runs its agent and speaks its errors.
using orchestrator::AgentOutcome;
using orchestrator::AgentSettings;
using orchestrator::Config;
using orchestrator::Error;
using orchestrator::Json;
using orchestrator::ModelConfig;
using orchestrator::Result;

enum class TaskFormat { TerminalBench, Harbor, SweBench };
// How SWE-bench's harness reads a repository's test log (swebench/harness/log_parsers).
enum class SweLogParser { Pytest, PytestOptions, PytestV2, Django, Sympy, Seaborn, Matplotlib };
std::string to_string(TaskFormat format);

// What a task's Dockerfile asks of its environment, as far as it can be honoured without an
// image build: WORKDIR, ENV, and COPY/ADD of files from the build context into the workspace
// (ADD unpacks a local tar archive, as Docker does).
struct Environment {
  std::string base_image;        // FROM, for the record
  std::string workdir = "/app";  // the workspace appears here (TB's convention when unset)
  std::vector<std::string> env;  // KEY=VALUE
  std::string context;           // the build context, relative to the task's folder ("" for it)
  struct Copy {
    std::string source;       // relative to the task's folder, beneath the build context
    std::string destination;  // relative to the workdir ("" or "." for the workdir itself)
    bool extract = false;     // ADD of a local tar archive: unpacked there, as Docker does
  };
  std::vector<Copy> copies;
  // Instructions that need an image build: RUN, ADD of a URL, COPY outside the workdir, with a
  // glob or from another stage, USER. Never skipped silently: the task runs on the image built
  // from its Dockerfile (prepare_images), or on --rootfs, or not at all.
  std::vector<std::string> needs_image;
  std::string dockerfile;  // relative to the task's folder; "" when the task has none
  // An image to run on as it is, by its full name, with no Dockerfile: pulled on first use
  // (SWE-bench's per-instance images). "" for none.
  std::string image_name;
  // false: the task's sandboxes never get a network, whatever EvalSettings::network says
  // (Harbor's `allow_internet = false`).
  bool allows_internet = true;
  // The image built from the Dockerfile, once prepare_images has built it: its layers (top first),
  // the lower layers of the task's root, and the WORKDIR and ENV it gives.
  struct Image {
    std::vector<std::string> layers;
    std::string workdir;
    std::vector<std::string> env;
    std::vector<std::string> entrypoint, cmd;  // what a container of it runs unless told
  } image;
  // The other services of the task's docker-compose.yaml (a server, a database), each a sandbox
  // of its own on the trial's private network, where every service's name resolves; started in
  // depends_on order before the agent, and up until the tests have run.
  struct Service {
    std::string name;
    std::vector<std::string> aliases;  // its hostname, container name and network aliases
    std::string dockerfile, context;   // a build, relative to the task's folder; or
    std::string image_name;            // an image run as it is (`image:`), pulled on first use
    // What it runs: compose's `command` (exec form), or with `shell` set its one string run by
    // sh -c; empty: the image's ENTRYPOINT and CMD.
    std::vector<std::string> command;
    bool shell = false;
    std::vector<std::string> env;         // KEY=VALUE, over the image's
    std::vector<std::string> depends_on;  // services to start first
    // Its healthcheck: ["CMD", ARGS...] or ["CMD-SHELL", "COMMAND"]; empty for none. With
    // `awaited` (a service or the agent depends on it with condition service_healthy), nothing
    // after it starts until the check passes.
    std::vector<std::string> healthcheck;
    // Compose's defaults: a check each 30 s, unhealthy after 3 failures, no start period.
    std::chrono::milliseconds health_interval{30000}, health_start_period{0};
    int health_retries = 3;
    bool awaited = false;
    Image image;  // once prepare_images has it
  };
  std::vector<Service> services;
  std::string service_name;  // the agent's own service, as the others reach it
};

// Reads the Dockerfile `file` of the task folder `task_dir`, whose build context is `context`
// (both relative to the folder, "" for the folder itself). Every source is resolved beneath the
// context: an absolute path, "..", or a link that leads out of it is an Error naming it.
Result<Environment> read_dockerfile(const std::string& task_dir, const std::string& file,
                                    const std::string& context);

struct Task {
  std::string name;  // the directory's name
  TaskFormat format = TaskFormat::TerminalBench;
  std::string dir;  // absolute
  std::string instruction;
  std::string category, difficulty;
  std::vector<std::string> tags;
  std::chrono::seconds agent_timeout{360};
  std::chrono::seconds test_timeout{60};
  Environment environment;
  std::string solution;     // the reference solution as a shell script (solution.yaml converted);
                            // empty when the task has none (Harbor's solution/ is optional)
  std::string tests_dir;    // copied to /tests for grading (absolute; beneath `dir`); empty when
                            // a Terminal-Bench task's tests live inline in its run-tests.sh
  std::string test_script;  // TB: run-tests.sh; Harbor: tests/test.sh (absolute; beneath `dir`)
  // SWE-bench style instances: the instance's image (Environment::image_name: the repository at
  // /testbed, its environment in conda's "testbed"), or a local git checkout at a base commit.
  struct Swe {
    std::string repo;       // the instance's "repo" (owner/name), for the record
    std::string repo_path;  // absolute path of the local checkout
    // The checkout as the instance names it: `repo_relative` beneath `repo_root`, the folder of
    // the instances file (resolved beneath it when copied).
    std::string repo_root, repo_relative;
    std::string base_commit;
    std::string patch;       // the gold patch (the oracle's)
    std::string test_patch;  // applied before the tests, never shown to the agent
    std::vector<std::string> fail_to_pass, pass_to_pass;  // test ids
    // Run in the repository with the test files appended; on an image, what it prints is read by
    // `log_parser`, else pytest's report is.
    std::string test_command;
    // On an image, as SWE-bench's harness has them for the instance's repo and version: the
    // parser of the test log, the commands run before the tests, and the package's install.
    std::string version;
    SweLogParser log_parser = SweLogParser::Pytest;
    std::vector<std::string> eval_commands;
    std::string install;
  } swe;
  // A task whose files are unreadable or inconsistent is kept with this set, so that the rest of
  // the suite runs and the report names it.
  std::string load_error;
};

// A task directory, a folder of them (subdirectories holding task.yaml or task.toml), or a .json
// or .jsonl file of SWE-bench style instances; sorted by name. An Error only when `path` itself
// cannot be read or holds no task at all.
Result<std::vector<Task>> load_suite(const std::string& path);

// ---------------------------------------------------------------------------------------------
// Trials
// ---------------------------------------------------------------------------------------------

struct TestResult {
  std::string id;      // the whole node id: tests/test_x.py::TestY::test_z
  std::string name;    // after the first "::" (Terminal-Bench's name)
  std::string status;  // PASSED, FAILED, SKIPPED, XFAIL, XPASS, ERROR
  bool passed() const { return status == "PASSED" || status == "SKIPPED" || status == "XFAIL"; }
};

// pytest -rA's "short test summary info" section, read the way Terminal-Bench reads it. nullopt
// when the output has no such section (the tests did not run to their end).
std::optional<std::vector<TestResult>> parse_pytest_summary(const std::string& output);

// pytest's JUnit XML report (--junitxml), as the same results, ids rebuilt as pytest's node ids
// (tests/test_x.py::TestY::test_z); nullopt when it is not such a report. Grading reads this,
// written to a host folder, rather than the output, which the program under test can print to.
std::optional<std::vector<TestResult>> parse_junit_report(const std::string& xml);

// A CTRF report (ctrf.io's Common Test Report Format: results.tests[], each with a name and a
// status of passed, failed, skipped, pending or other), as Harbor's verifiers leave it with
// `pytest --ctrf PATH`: the same results, statuses as pytest's (pending: SKIPPED, other: ERROR).
// nullopt when it is not such a report.
std::optional<std::vector<TestResult>> parse_ctrf_report(const std::string& json);

// Who answers in a trial: the task's reference solution replayed (oracle), an agent that submits
// at once (nop), or a model.
enum class AgentKind { Oracle, Nop, Model };
std::string to_string(AgentKind kind);  // "oracle", "nop", "model"
std::optional<AgentKind> agent_kind(const std::string& name);

// Why a trial did not resolve its task. Stored and printed by its name (to_string): "" for None,
// agent_timeout, test_timeout, test_failed, environment_error (the trial never ran: its task or
// environment could not be set up, or grading could not start), format_error, api_error,
// agent_error.
enum class FailureMode {
  None,
  AgentTimeout,
  TestTimeout,
  TestFailed,
  EnvironmentError,
  FormatError,
  ApiError,
  AgentError,
};
std::string to_string(FailureMode mode);

struct EvalSettings {
  AgentKind agent = AgentKind::Oracle;
  ModelConfig model;  // for AgentKind::Model
  // An embedded model's engine, opened once by run_eval (unless given) and shared by its trials,
  // whose requests its Batcher gathers into the same decode steps.
  std::shared_ptr<inference::Batcher> batcher;
  AgentSettings agent_settings;  // limits, retries, thinking (the task sets the time limit)
  double timeout_multiplier = 1.0;
  std::string rootfs;  // a prepared base image for tasks whose Dockerfile needs one, unbuilt
  std::string images;  // the image store (image::Store); "" for image::default_store_dir()
  sandbox::Limits limits;
  // The network of the agent's and the tests' sandboxes, for tasks that allow one (never for
  // SWE-bench instances, whose grading must not fetch): None, the default, keeps them offline
  // (the tests' network steps are served by stand-ins, eval.md); Outbound gives them the
  // internet through a NAT of their own, and the tests run exactly as written.
  sandbox::Network network = sandbox::Network::None;
  // With an outbound network, the tests' Python steps (uv, pip, the astral.sh installer) still
  // meet the offline stand-ins, for a network that reaches a distribution's mirror but not PyPI:
  // apt-get gets its archive, uv and pip what the image has.
  bool stand_ins = false;
  // Each trial's workspace, tests and verifier folder are bounded filesystems of
  // limits.disk_bytes each (sandbox::make_workspace), removed when the trial ends unless kept.
  std::string workspaces;  // where trial directories are made
  bool keep_workspaces = false;
};

struct TrialReport {
  storage::TrialId trial = 0;
  std::string task;
  int attempt = 0;
  bool resolved = false;
  FailureMode failure_mode = FailureMode::None;  // None when resolved
  std::string message;
  AgentOutcome agent;
  std::vector<TestResult> tests;
  std::optional<double> reward;  // Harbor
  double total_ms = 0;
  double harness_ms = 0;  // the trial less the task's own commands (agent tools, the tests)
  // Records the store could not write (an artifact, the trial's end): the result above stands,
  // the database lacks them. The first one's reason.
  int record_errors = 0;
  std::string record_error;
};

// One attempt at one task: its environment, the agent, then grading in a fresh sandbox that
// starts from a snapshot of what the agent left, with the tests put in only then. Recorded in
// `store` under `run` and `task_id` as it goes.
boost::asio::awaitable<TrialReport> run_trial(const Task& task, int attempt,
                                              const EvalSettings& settings,
                                              sandbox::Runtime& runtime, storage::Store& store,
                                              const Config& config, storage::RunId run,
                                              storage::TaskId task_id);

// ---------------------------------------------------------------------------------------------
// Suites
// ---------------------------------------------------------------------------------------------

struct EvalOptions {
  std::string suite;  // a task directory or a folder of them
  EvalSettings settings;
  int concurrency = 0;        // trials at once; 0: what the machine can hold
  int attempts = 1;           // per task (pass@k), one at a time
  std::string filter;         // a glob on task names; empty: all
  int shard = 0, shards = 1;  // run the tasks whose index in the sorted suite is shard mod shards
  std::optional<storage::RunId> resume;         // skip that run's finished trials, rerun the rest
  std::function<void(const std::string&)> log;  // lines about long steps (image builds)
};

// Builds (or finds cached) the image of each task whose Dockerfile needs one, unless
// settings.rootfs stands in for them all: Environment::image is set, or, when the build fails,
// the task's load_error says why (the task is then not run). `log` gets a line per build. Returns
// when every image is settled; run_eval instead builds while the trials of ready tasks run.
void prepare_images(const std::vector<Task*>& tasks, const EvalSettings& settings,
                    const std::function<void(const std::string&)>& log);

struct EvalProgress {
  int total = 0, done = 0, running = 0, resolved = 0, failed = 0;
  int not_run = 0;   // environment_error: the trial never ran (counted apart from `failed`)
  double eta_s = 0;  // from the mean trial time so far and the concurrency
};

struct EvalResult {
  storage::RunId run = 0;
  std::vector<TrialReport> trials;  // those run now (not those a resume skipped)
};

// Runs a suite: N trials at once on the caller's executor, every trial recorded as it goes.
boost::asio::awaitable<Result<EvalResult>> run_eval(
    EvalOptions options, sandbox::Runtime& runtime, storage::Store& store, const Config& config,
    std::function<void(const EvalProgress&, const TrialReport*)> on_progress);

// The report of an eval run, from the store: resolved rate, pass@k, per-task status and failure
// mode, tokens, cost, durations, by category.
Result<Json> eval_report(const storage::Store& store, storage::RunId run);

// The SWE-bench predictions file of a run: {instance_id: {model_name_or_path, instance_id,
// model_patch}}, each instance's last graded attempt. Empty when the run has no SWE-style task.
Result<Json> swe_predictions(const storage::Store& store, storage::RunId run);

// An HTML page of the report: self-contained (no scripts or styles fetched), with the task table
// and charts of the resolved rate by category and of the duration and cost distributions.
std::string report_html(const Json& report);

// Copies the eval runs of the shard databases `sources` into `store` as one new run (tasks joined
// by name), so that one report covers them all. Returns the new run's id.
Result<std::vector<storage::RunId>> merge_databases(storage::Store& store,
                                                    const std::vector<std::string>& sources);

// pass@k over n attempts of which c resolved: 1 - C(n-c, k) / C(n, k) (the unbiased estimator).
double pass_at_k(int n, int c, int k);

}  // namespace warren::eval
