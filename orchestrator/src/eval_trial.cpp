// One eval trial: the task's environment, the agent (oracle, nop or a model), and grading.
//
// The oracle is the reference solution sent through the whole tool-call path: rendered as the
// DSML bash call a model would write, streamed through the parser by the scripted backend, run in
// the sandbox and recorded like any step. Grading starts a fresh sandbox from a snapshot of what
// the agent left and only then puts the tests in (at /tests): the agent never sees them.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/this_coro.hpp>

#include "eval_swe.hpp"
#include "task_files.hpp"
#include "warren/orchestrator/eval.hpp"

namespace warren::orchestrator::eval {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::chrono::seconds scaled(std::chrono::seconds limit, double multiplier) {
  return std::chrono::seconds(
      static_cast<std::int64_t>(static_cast<double>(limit.count()) * multiplier + 0.5));
}

// A bash call carrying `script` as the model would write it, with the script in a here-document
// whose delimiter does not occur in it.
std::string bash_call_completion(const std::string& reasoning, const std::string& script) {
  std::string delimiter = "WARREN_SOLUTION";
  while (script.find(delimiter) != std::string::npos) delimiter += "_";
  const std::string command =
      "bash <<'" + delimiter + "'\n" + script + (script.ends_with('\n') ? "" : "\n") + delimiter;
  return reasoning + "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n" +
         "<｜DSML｜parameter name=\"command\" string=\"true\">" + command +
         "</｜DSML｜parameter>\n" + "</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
}

std::string submit_completion(const std::string& reasoning) {
  return reasoning +
         "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke "
         "name=\"submit\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
}

// The task's files as the Dockerfile's COPY lines lay them out, handed to the sandbox's ids. Every
// source is resolved beneath the task's folder (sandbox::make_workspace): the task is data.
sandbox::Result<sandbox::WorkspaceCopy> make_workspace(const Task& task, const fs::path& trial_dir,
                                                       unsigned host_ids,
                                                       sandbox::WorkspaceLimits limits) {
  const std::string workspace = (trial_dir / "workspace").string();
  if (task.format == TaskFormat::SweBench)  // the checkout, history included
    return sandbox::make_workspace(task.swe.repo_root, {{task.swe.repo_relative, ""}}, workspace,
                                   host_ids, limits);
  std::vector<sandbox::WorkspaceFile> files;
  for (const Environment::Copy& c : task.environment.copies)
    if (!c.extract) files.push_back({c.source, c.destination});  // archives: unpack_archives
  return sandbox::make_workspace(task.dir, files, workspace, host_ids, limits);
}

// ADD of tar archives, unpacked in a sandbox (the archive comes from the task: its members must
// not be able to land outside the workspace). The archive goes in on standard input: the sandbox's
// users may not be able to reach the task's folder. Empty on success, else what went wrong.
boost::asio::awaitable<std::string> unpack_archives(const Task& task, sandbox::Policy policy,
                                                    sandbox::Runtime& runtime) {
  for (const Environment::Copy& c : task.environment.copies) {
    if (!c.extract) continue;
    auto folder = orchestrator::detail::TaskFolder::open(task.dir);
    if (!folder) co_return folder.error().message;
    auto archive = folder->read(c.source, "the archive", std::uint64_t{1} << 30);
    if (!archive) co_return archive.error().message;
    const std::string into = c.destination.empty() ? "." : c.destination;
    sandbox::Command command{{"sh", "-c", "mkdir -p \"$1\" && tar -xf - -C \"$1\"", "unpack", into},
                             std::move(*archive)};
    sandbox::Policy unpack = policy;
    auto r = co_await runtime.async_run(std::move(unpack), std::move(command));
    if (!r) co_return "unpacking " + c.source + ": " + r.error().message;
    if (r->exit_code != 0) co_return "unpacking " + c.source + ": " + r->stderr_data.substr(0, 300);
  }
  co_return std::string();
}

// The tests, and the script that runs them, copied for the grading sandbox (at /tests), from
// beneath the task's folder.
sandbox::Result<sandbox::WorkspaceCopy> make_tests(const Task& task, const fs::path& trial_dir,
                                                   unsigned host_ids,
                                                   sandbox::WorkspaceLimits limits) {
  const std::string tests = (trial_dir / "tests").string();
  if (task.format == TaskFormat::SweBench) {
    const fs::path stage = trial_dir / "tests-stage";
    std::error_code ec;
    fs::create_directories(stage, ec);
    std::ofstream(stage / "test.patch", std::ios::binary) << task.swe.test_patch;
    auto copied = sandbox::make_workspace(stage.string(), {{".", ""}}, tests, host_ids, limits);
    fs::remove_all(stage, ec);
    return copied;
  }
  std::vector<sandbox::WorkspaceFile> files{{"tests", ""}};
  if (task.format == TaskFormat::TerminalBench) files.push_back({"run-tests.sh", "run-tests.sh"});
  return sandbox::make_workspace(task.dir, files, tests, host_ids, limits);
}

// What runs the tests. Terminal-Bench's run-tests.sh usually installs uv and a pinned pytest from
// the network first; with no network the local pytest runs the same tests instead.
std::string grading_command(const Task& task, const std::string& script_text) {
  if (task.format == TaskFormat::SweBench) return detail::swe_grading_command(task);
  // The reward is read from /logs/verifier (a host folder) once the sandbox has ended, never from
  // the output, which the program under test writes too (read_reward).
  if (task.format == TaskFormat::Harbor)
    return "mkdir -p /logs/agent /logs/artifacts; bash /tests/test.sh > "
           "/logs/verifier/test-stdout.txt 2>&1; status=$?; cat /logs/verifier/test-stdout.txt; "
           "exit $status";
  const bool fetches = script_text.find("curl") != std::string::npos ||
                       script_text.find("uv ") != std::string::npos ||
                       script_text.find("pip install") != std::string::npos;
  if (fetches) return "export TEST_DIR=/tests; python3 -m pytest -rA -p no:cacheprovider /tests";
  return "export TEST_DIR=/tests; bash /tests/run-tests.sh";
}

// Harbor's reward: reward.json's "reward" (or its only number), else reward.txt's number, read
// from the verifier's folder after the grading sandbox has ended: every process that could write
// there is gone, and what the verifier wrote last is what counts. The folder is the sandbox's, so
// it is read as untrusted data (regular files only, nothing followed out of it).
std::optional<double> read_reward(const fs::path& verifier_dir) {
  auto folder = orchestrator::detail::TaskFolder::open(verifier_dir.string());
  if (!folder) return std::nullopt;
  if (auto json_text = folder->read("reward.json", "the reward", 1 << 20)) {
    if (auto parsed = toolcall::parse_json(*json_text); parsed && parsed->is_object()) {
      if (parsed->contains("reward") && (*parsed)["reward"].is_number())
        return (*parsed)["reward"].get<double>();
      for (const auto& [key, value] : parsed->items())
        if (value.is_number()) return value.get<double>();
    }
  }
  auto txt_text = folder->read("reward.txt", "the reward", 1 << 20);
  if (!txt_text) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(txt_text->c_str(), &end);
  if (end == txt_text->c_str()) return std::nullopt;
  return value;
}

// Where pytest writes its JUnit report in the grading sandbox (PYTEST_ADDOPTS reaches every
// pytest that run-tests.sh starts, uv's included), a folder of the host's.
constexpr const char* kReportDir = "/logs/warren";

// pytest's report, read from the results folder after the grading sandbox has ended, as
// untrusted data (read_reward says why).
std::optional<std::vector<TestResult>> read_test_report(const fs::path& results_dir) {
  auto folder = orchestrator::detail::TaskFolder::open(results_dir.string());
  if (!folder) return std::nullopt;
  auto xml = folder->read("junit.xml", "the test report", std::uint64_t{64} << 20);
  if (!xml) return std::nullopt;
  return parse_junit_report(*xml);
}

std::string failure_of(const AgentOutcome& a) {
  if (a.exit_status == "submitted" || a.exit_status == "exit_steps" || a.exit_status == "exit_cost")
    return "";  // the agent ended normally or ran out of budget: the tests decide
  if (a.exit_status == "exit_time") return "agent_timeout";
  if (a.exit_status == "exit_format") return "format_error";
  if (a.exit_status == "exit_api") return "api_error";
  if (a.exit_status == "exit_environment") return "environment_error";
  return "agent_error";
}

// Counts the time the agent's tools ran (the task's own commands, not the harness's).
class ToolTime final : public Observer {
 public:
  void on_step(const StepReport& r) override { tools_ms += r.tools_ms; }
  double tools_ms = 0;
};

}  // namespace

std::optional<std::vector<TestResult>> parse_pytest_summary(const std::string& output) {
  // The first "=== short test summary info ===" line, any number of '='.
  std::size_t at = std::string::npos;
  for (std::size_t pos = output.find("short test summary info"); pos != std::string::npos;
       pos = output.find("short test summary info", pos + 1)) {
    const std::size_t line_start =
        output.rfind('\n', pos) == std::string::npos ? 0 : output.rfind('\n', pos) + 1;
    if (output.compare(line_start, 1, "=") == 0) {
      at = output.find('\n', pos);
      break;
    }
  }
  if (at == std::string::npos) return std::nullopt;
  std::vector<TestResult> results;
  std::size_t start = at + 1;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    std::string line = output.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t space = line.find(' ');
    if (space == std::string::npos) continue;
    std::string status = line.substr(0, space);
    if (status.ends_with(':')) status.pop_back();
    if (status != "PASSED" && status != "FAILED" && status != "SKIPPED" && status != "XFAIL" &&
        status != "XPASS" && status != "ERROR")
      continue;
    std::string id = line.substr(space + 1);
    if (status == "FAILED")
      if (const std::size_t dash = id.rfind(" - "); dash != std::string::npos) id.resize(dash);
    std::string name = id;
    if (const std::size_t colons = name.find("::"); colons != std::string::npos)
      name = name.substr(colons + 2);
    results.push_back({id, name, status});
  }
  return results;
}

boost::asio::awaitable<TrialReport> run_trial(const Task& task, int attempt,
                                              const EvalSettings& settings,
                                              sandbox::Runtime& runtime, storage::Store& store,
                                              const Config& config, storage::RunId run,
                                              storage::TaskId task_id) {
  const auto started = Clock::now();
  TrialReport report{.task = task.name, .attempt = attempt};
  double task_ms = 0;  // the task's own commands: the agent's tools and the tests
  storage::Trial trial{.run = run, .task = task_id, .attempt = attempt};
  trial.prompt = initial_prompt(config, task.instruction);
  trial.info = {{"agent", settings.agent},
                {"model", settings.agent == "model" ? settings.model.name : settings.agent}};
  auto trial_id = co_await store.async_start_trial(std::move(trial));
  if (!trial_id) {
    report.failure_mode = "environment_error";
    report.message = "recording the trial: " + trial_id.error().message;
    co_return report;
  }
  report.trial = *trial_id;

  // Whatever ends the trial early ends it here, recorded.
  auto finish = [&](std::string failure, std::string message) -> TrialReport {
    report.failure_mode = std::move(failure);
    report.message = std::move(message);
    report.total_ms = ms_since(started);
    report.harness_ms = report.total_ms - task_ms;
    return report;
  };
  std::string problem = task.load_error;
  if (problem.empty() && !task.environment.needs_image.empty() && settings.rootfs.empty())
    problem = "needs a prepared base image (--rootfs): " + task.environment.needs_image.front();
  const fs::path trial_dir =
      fs::path(settings.workspaces) / ("trial-" + std::to_string(report.trial));
  std::error_code ec;
  (void)sandbox::remove_workspace(trial_dir.string());  // a leftover of a deleted database
  fs::create_directories(trial_dir, ec);
  // The trial's folder and its bounded filesystems go when it ends, unless asked to stay.
  struct Cleanup {
    std::string dir;
    bool keep;
    ~Cleanup() {
      if (!keep) (void)sandbox::remove_workspace(dir);
    }
  } cleanup{trial_dir.string(), settings.keep_workspaces};
  const sandbox::WorkspaceLimits bounded{.bytes = settings.limits.disk_bytes};
  // Every sandbox of the trial runs in host ids of its own, which own its workspace: no other
  // trial's sandbox can signal its processes or write its files.
  auto ids = sandbox::IdRange::take();
  if (problem.empty() && !ids) problem = ids.error().message;
  const unsigned host_ids = ids ? ids->base() : 0;
  if (problem.empty())
    if (auto made = make_workspace(task, trial_dir, host_ids, bounded); !made)
      problem = made.error().message;

  sandbox::Policy policy;
  policy.host_ids = host_ids;
  policy.limits = settings.limits;
  policy.rootfs = settings.rootfs;
  policy.workspace = (trial_dir / "workspace").string();
  policy.workspace_path = task.environment.workdir;
  policy.env = task.environment.env;
  policy.env.push_back("PYTHONDONTWRITEBYTECODE=1");
  AgentSettings agent_settings = settings.agent_settings;
  agent_settings.limits.timeout = scaled(task.agent_timeout, settings.timeout_multiplier);
  agent_settings.command_timeout = agent_settings.limits.timeout;
  policy.limits.timeout = agent_settings.limits.timeout;

  // The agent.
  std::unique_ptr<ModelBackend> backend;
  if (problem.empty()) {
    if (settings.agent == "oracle") {
      const std::string script =
          task.format == TaskFormat::SweBench ? detail::swe_oracle_script(task) : task.solution;
      backend =
          make_scripted_backend_from({bash_call_completion("Run the reference solution.", script),
                                      submit_completion("The solution has run.")});
    } else if (settings.agent == "nop") {
      backend = make_scripted_backend_from({submit_completion("Doing nothing.")});
    } else {
      auto made = make_backend(settings.model, co_await boost::asio::this_coro::executor);
      if (made)
        backend = std::move(*made);
      else
        problem = made.error().message;
    }
  }
  if (problem.empty()) problem = co_await unpack_archives(task, policy, runtime);
  std::unique_ptr<sandbox::Session> session;
  if (problem.empty()) {
    auto started_session = co_await sandbox::Session::async_start(runtime, policy);
    if (started_session)
      session = std::move(*started_session);
    else
      problem = "starting the sandbox: " + started_session.error().message;
  }
  if (problem.empty() && task.format == TaskFormat::SweBench) {
    std::string setup = detail::swe_setup_command(task);  // named: see sandbox.hpp on GCC 12
    auto ready = co_await session->async_exec(std::move(setup));
    if (!ready || ready->exit_code != 0)
      problem = "checking out " + task.swe.base_commit + ": " +
                (ready ? ready->stdout_data + ready->stderr_data : ready.error().message);
  }
  if (!problem.empty()) {
    storage::TrialEnd end{.exit_status = "exit_environment",
                          .resolved = false,
                          .failure_mode = "environment_error",
                          .info = {{"message", problem}}};
    (void)co_await store.async_finish_trial(report.trial, std::move(end));
    co_return finish("environment_error", problem);
  }
  ToolTime tool_time;
  auto tools = make_sandbox_tools(*session, agent_settings);
  AgentContext context{*backend, *tools, store, config, agent_settings, &tool_time};
  report.agent = co_await run_agent(context, report.trial);
  task_ms += tool_time.tools_ms;

  // Grading: a fresh sandbox from a snapshot of the agent's, with the tests put in at /tests.
  std::string grading_problem;
  const fs::path snapshot = trial_dir / "snapshot";
  if (auto saved = session->snapshot(snapshot.string()); !saved)
    grading_problem = saved.error().message;
  session.reset();
  if (grading_problem.empty())
    if (auto made = make_tests(task, trial_dir, host_ids, bounded); !made)
      grading_problem = made.error().message;
  // The results are written into a folder of the host's and read from it once the grading
  // sandbox has ended: Harbor's reward (read_reward), pytest's report (read_test_report).
  const fs::path verifier_dir = trial_dir / "verifier";
  if (grading_problem.empty())
    if (auto made = sandbox::make_workspace(trial_dir.string(), {}, verifier_dir.string(), host_ids,
                                            bounded);
        !made)
      grading_problem = made.error().message;
  sandbox::ExecResult graded;
  if (grading_problem.empty()) {
    sandbox::Policy grading = policy;
    grading.workspace.clear();  // the snapshot's workspace, copy-on-write
    grading.snapshot = snapshot.string();
    grading.mounts.push_back({(trial_dir / "tests").string(), "/tests", false});
    if (task.format == TaskFormat::Harbor) {
      grading.mounts.push_back({verifier_dir.string(), "/logs/verifier", false});
    } else {
      grading.mounts.push_back({verifier_dir.string(), kReportDir, false});
      grading.env.push_back(std::string("PYTEST_ADDOPTS=--junitxml=") + kReportDir +
                            "/junit.xml -o junit_family=xunit1");
    }
    grading.limits.timeout = scaled(task.test_timeout, settings.timeout_multiplier);
    std::string script_text;
    if (auto folder = orchestrator::detail::TaskFolder::open(task.dir);
        folder && task.format == TaskFormat::TerminalBench)
      script_text = folder->read("run-tests.sh", "the test script").value_or("");
    sandbox::Command command{{"bash", "-c", grading_command(task, script_text)}, std::nullopt};
    auto result = co_await runtime.async_run(std::move(grading), std::move(command));
    if (result)
      graded = std::move(*result);
    else
      grading_problem = "starting the grading sandbox: " + result.error().message;
    task_ms += static_cast<double>(graded.duration.count());
  }
  std::string failure = failure_of(report.agent);
  std::string message = report.agent.message;
  const std::string output = graded.stdout_data + graded.stderr_data;
  if (!grading_problem.empty()) {
    failure = "environment_error";
    message = grading_problem;
  } else if (graded.timed_out) {
    if (failure.empty()) failure = "test_timeout";
  } else if (task.format == TaskFormat::SweBench) {
    // A test command that is not pytest writes no report: its summary is read from the output,
    // as the SWE-bench harness reads it.
    auto tests = task.swe.test_command.find("pytest") != std::string::npos
                     ? read_test_report(verifier_dir)
                     : parse_pytest_summary(output);
    if (tests) report.tests = *tests;
    std::string why;
    report.resolved = tests && detail::swe_resolved(task, *tests, why);
    if (!report.resolved && failure.empty())
      message = tests ? why : "the tests wrote no report (pytest's junit.xml)";
    storage::Artifact prediction{report.trial, "patch", detail::swe_prediction(output)};
    (void)co_await store.async_put_artifact(std::move(prediction));
  } else if (task.format == TaskFormat::Harbor) {
    report.reward = read_reward(verifier_dir);
    report.resolved = report.reward && *report.reward >= 1.0;
    if (!report.reward && failure.empty()) {
      failure = "test_failed";
      message = "the verifier wrote no reward";
    }
  } else {
    auto tests = read_test_report(verifier_dir);
    if (tests) report.tests = *tests;
    report.resolved =
        tests && !tests->empty() &&
        std::all_of(tests->begin(), tests->end(), [](const TestResult& t) { return t.passed(); });
    if (!tests && failure.empty()) message = "the tests wrote no report (pytest's junit.xml)";
  }
  if (report.resolved)
    failure.clear();
  else if (failure.empty())
    failure = "test_failed";

  Json tests = Json::array();
  for (const TestResult& t : report.tests)
    tests.push_back({{"name", t.name}, {"status", t.status}});
  storage::Artifact log{report.trial, "tests", output};
  (void)co_await store.async_put_artifact(std::move(log));
  storage::TrialEnd end{.exit_status = report.agent.exit_status,
                        .resolved = report.resolved,
                        .failure_mode = failure,
                        .info = {{"tests", tests}, {"message", message}}};
  if (report.reward) end.info["reward"] = *report.reward;
  // The harness's share so far (the last record and the snapshot's removal follow).
  end.info["harness_ms"] = ms_since(started) - task_ms;
  (void)co_await store.async_finish_trial(report.trial, std::move(end));
  fs::remove_all(snapshot, ec);
  co_return finish(failure, message);
}

}  // namespace warren::orchestrator::eval
