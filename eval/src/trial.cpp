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

#include "services.hpp"
#include "swe.hpp"
#include "task_files.hpp"
#include "test_run.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

namespace fs = std::filesystem;
using detail::Grading;
using detail::grading_command;
using detail::install_offline_tools;
using detail::kReportDir;
using detail::read_reward;
using detail::read_test_report;
using Clock = std::chrono::steady_clock;
// The agent, as the orchestrator runs it.
using orchestrator::AgentContext;
using orchestrator::ModelBackend;
using orchestrator::Observer;
using orchestrator::StepReport;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::chrono::seconds scaled(std::chrono::seconds limit, double multiplier) {
  return std::chrono::seconds(
      static_cast<std::int64_t>(static_cast<double>(limit.count()) * multiplier + 0.5));
}

// A completion with one call of `tool`, as the model would write it: what the oracle and nop
// agents answer with.
std::string scripted_call(const std::string& reasoning, const std::string& tool,
                          const Json& arguments) {
  toolcall::Message said{.role = toolcall::Role::Assistant};
  said.reasoning_content = reasoning;
  said.tool_calls.push_back(
      {"", tool, arguments.dump(-1, ' ', false, Json::error_handler_t::replace)});
  auto text = toolcall::make_codec(toolcall::Format::V4)->render_completion(said);
  return text ? *text : std::string();  // an object's JSON text always renders
}

// A bash call running `script`, in a here-document whose delimiter does not occur in it.
std::string bash_call_completion(const std::string& reasoning, const std::string& script) {
  std::string delimiter = "WARREN_SOLUTION";
  while (script.find(delimiter) != std::string::npos) delimiter += "_";
  const std::string command =
      "bash <<'" + delimiter + "'\n" + script + (script.ends_with('\n') ? "" : "\n") + delimiter;
  return scripted_call(reasoning, "bash", {{"command", command}});
}

std::string submit_completion(const std::string& reasoning) {
  return scripted_call(reasoning, "submit", Json::object());
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
    auto folder = detail::TaskFolder::open(task.dir);
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
  std::vector<sandbox::WorkspaceFile> files;
  if (!task.tests_dir.empty()) files.push_back({"tests", ""});
  if (task.format == TaskFormat::TerminalBench) files.push_back({"run-tests.sh", "run-tests.sh"});
  return sandbox::make_workspace(task.dir, files, tests, host_ids, limits);
}

FailureMode failure_of(const AgentOutcome& a) {
  using orchestrator::ExitStatus;
  switch (a.exit_status) {
    case ExitStatus::Submitted:
    case ExitStatus::ExitSteps:
    case ExitStatus::ExitCost:
      return FailureMode::None;  // the agent ended normally or ran out of budget: the tests decide
    case ExitStatus::ExitTime:
      return FailureMode::AgentTimeout;
    case ExitStatus::ExitFormat:
      return FailureMode::FormatError;
    case ExitStatus::ExitApi:
      return FailureMode::ApiError;
    case ExitStatus::ExitEnvironment:
      return FailureMode::EnvironmentError;
    case ExitStatus::ExitContext:
    case ExitStatus::Cancelled:
      break;
  }
  return FailureMode::AgentError;
}

// Counts the time the agent's tools ran (the task's own commands, not the harness's).
class ToolTime final : public Observer {
 public:
  void on_step(const StepReport& r) override { tools_ms += r.tools_ms; }
  double tools_ms = 0;
};

// The time a trial takes, and the part of it that is the task's own commands (the agent's tools,
// the tests): the rest is the harness's.
struct TrialClock {
  Clock::time_point started = Clock::now();
  double task_ms = 0;
  double harness_ms() const { return ms_since(started) - task_ms; }
  TrialReport finish(TrialReport& report, FailureMode failure, std::string message) const {
    report.failure_mode = failure;
    report.message = std::move(message);
    report.total_ms = ms_since(started);
    report.harness_ms = report.total_ms - task_ms;
    return report;
  }
};

// A record the store could not write leaves the trial's result standing: it is counted in the
// report, with the first reason, rather than dropped.
void count(const storage::Result<void>& written, TrialReport& report) {
  if (written) return;
  if (report.record_errors++ == 0) report.record_error = written.error().message;
}

// The environment of a task on its image: the image's, then the variables only the task's
// configuration sets (the Dockerfile's ENV lines are in the image already, expanded).
std::vector<std::string> with_image_env(const std::vector<std::string>& image,
                                        const std::vector<std::string>& task) {
  std::vector<std::string> env = image;
  auto key = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (const std::string& kv : task)
    if (std::none_of(image.begin(), image.end(),
                     [&](const std::string& i) { return key(i) == key(kv); }))
      env.push_back(kv);
  return env;
}

// Where a trial runs: its folder on the host (removed when the trial ends, unless kept), its own
// host ids, its workspace with the task's files, and the agent's policy and limits. `problem`
// says why the trial cannot run, if it cannot.
struct TrialPlace {
  TrialPlace(const Task& task, const EvalSettings& settings, storage::TrialId trial)
      : dir(fs::path(settings.workspaces) / ("trial-" + std::to_string(trial))),
        cleanup{dir.string(), settings.keep_workspaces},
        bounded{.bytes = settings.limits.disk_bytes},
        ids(sandbox::IdRange::take()) {
    const Environment::Image& image = task.environment.image;
    const bool on_image = !image.layers.empty();
    problem = task.load_error;
    if (problem.empty() && !task.environment.needs_image.empty() && settings.rootfs.empty() &&
        !on_image)
      problem = "needs a prepared base image (--rootfs): " + task.environment.needs_image.front();
    std::error_code ec;
    (void)sandbox::remove_workspace(dir.string());  // a leftover of a deleted database
    fs::create_directories(dir, ec);
    // Every sandbox of the trial runs in host ids of its own, which own its workspace: no other
    // trial's sandbox can signal its processes or write its files.
    if (problem.empty() && !ids) problem = ids.error().message;
    host_ids = ids ? ids->base() : 0;
    // On an image, the trial's root is an overlay of its own over the image, on the host: the
    // agent's sandbox writes it, and the tests' sandbox starts from what it left.
    if (problem.empty())
      if (auto made = on_image ? sandbox::overlay_workspace(image.layers, {}, root().string(),
                                                            host_ids, bounded)
                               : make_workspace(task, dir, host_ids, bounded).map([](auto&&) {});
          !made)
        problem = made.error().message;
    // Builders leave an image's / read-only (0555), which a container's root, with its
    // capabilities, writes all the same; the sandbox's root has none, so its / is made writable
    // to its owner: the agent may make a top folder, and the tests go in at /tests.
    if (problem.empty() && on_image)
      fs::permissions(root(), fs::perms::owner_write, fs::perm_options::add, ec);
    policy.host_ids = host_ids;
    policy.limits = settings.limits;
    policy.rootfs = on_image ? "" : settings.rootfs;
    policy.root = on_image ? root().string() : "";
    policy.workspace = on_image ? "" : (dir / "workspace").string();
    policy.workspace_path =
        on_image && !image.workdir.empty() ? image.workdir : task.environment.workdir;
    policy.env = on_image ? with_image_env(image.env, task.environment.env) : task.environment.env;
    policy.env.push_back("PYTHONDONTWRITEBYTECODE=1");
    if (task.environment.allows_internet && task.format != TaskFormat::SweBench)
      policy.network = settings.network;
    // A task's image is a container's root, and its scripts expect a container root's
    // capabilities (apt-get, chown, su), held in the trial's own user namespace only.
    if (on_image) policy.privileges = sandbox::Privileges::Container;
    agent_settings = settings.agent_settings;
    agent_settings.limits.timeout = scaled(task.agent_timeout, settings.timeout_multiplier);
    agent_settings.command_timeout = agent_settings.limits.timeout;
    policy.limits.timeout = agent_settings.limits.timeout;
  }
  fs::path root() const { return dir / "root"; }
  struct Cleanup {
    std::string dir;
    bool keep;
    ~Cleanup() {
      if (!keep) (void)sandbox::remove_workspace(dir);
    }
  };
  fs::path dir;
  Cleanup cleanup;  // after dir, before everything made in it
  sandbox::WorkspaceLimits bounded;
  sandbox::Result<sandbox::IdRange> ids;
  unsigned host_ids = 0;
  sandbox::Policy policy;
  AgentSettings agent_settings;
  std::string problem;
};

// The model the trial's agent talks to: the reference solution replayed (oracle), a model that
// does nothing (nop), or a real one.
boost::asio::awaitable<Result<std::unique_ptr<ModelBackend>>> make_agent(
    const Task& task, const EvalSettings& settings) {
  if (settings.agent == AgentKind::Oracle) {
    const std::string script =
        task.format == TaskFormat::SweBench ? detail::swe_oracle_script(task) : task.solution;
    if (script.empty())
      co_return tl::unexpected(
          Error{"the task has no reference solution (solution/solve.sh) for the oracle to run"});
    co_return orchestrator::make_scripted_backend_from(
        {bash_call_completion("Run the reference solution.", script),
         submit_completion("The solution has run.")});
  }
  if (settings.agent == AgentKind::Nop)
    co_return orchestrator::make_scripted_backend_from({submit_completion("Doing nothing.")});
  if (settings.batcher)
    co_return orchestrator::make_embedded_backend(settings.model, {}, settings.batcher);
  co_return orchestrator::make_backend(settings.model, co_await boost::asio::this_coro::executor);
}

// The agent's sandbox session, its task's archives unpacked and, for SWE-style tasks, the
// repository checked out at the base commit.
boost::asio::awaitable<Result<std::unique_ptr<sandbox::Session>>> start_environment(
    const Task& task, const sandbox::Policy& policy, sandbox::Runtime& runtime) {
  if (policy.root.empty())  // on an image, the build unpacked them
    if (std::string problem = co_await unpack_archives(task, policy, runtime); !problem.empty())
      co_return tl::unexpected(Error{problem});
  auto session = co_await sandbox::Session::async_start(runtime, policy);
  if (!session) co_return tl::unexpected(Error{"starting the sandbox: " + session.error().message});
  if (task.format == TaskFormat::SweBench) {
    std::string setup = detail::swe_setup_command(task);  // named: see sandbox.hpp on GCC 12
    auto ready = co_await (*session)->async_exec(std::move(setup));
    if (!ready || ready->exit_code != 0)
      co_return tl::unexpected(
          Error{(task.environment.image_name.empty()
                     ? "checking out " + task.swe.base_commit
                     : "activating the environment of " + task.environment.image_name) +
                ": " + (ready ? ready->stdout_data + ready->stderr_data : ready.error().message)});
  }
  co_return std::move(*session);
}

// Whether the tests' network steps meet the stand-ins: offline, or with a network that does not
// reach the package indexes (EvalSettings::stand_ins). Never for SWE-bench, whose commands are
// the harness's own.
bool uses_stand_ins(const Task& task, const sandbox::Policy& policy, const EvalSettings& settings) {
  return task.format != TaskFormat::SweBench &&
         (policy.network == sandbox::Network::None || policy.network == sandbox::Network::Private ||
          settings.stand_ins);
}

// Runs the tests in a fresh sandbox that starts from a snapshot of the agent's (which ends here),
// with the tests put in at /tests only now. The results are written into a folder of the host's
// and read from it once the grading sandbox has ended: Harbor's reward (read_reward), pytest's
// report (read_test_report).
boost::asio::awaitable<Grading> grade(const Task& task, const EvalSettings& settings,
                                      const TrialPlace& place,
                                      std::unique_ptr<sandbox::Session>& session,
                                      sandbox::Runtime& runtime) {
  Grading graded;
  const fs::path snapshot = place.dir / "snapshot", verifier_dir = place.dir / "verifier";
  const bool own_root = !place.policy.root.empty();  // kept on the host: no snapshot to take
  if (!own_root)
    if (auto saved = session->snapshot(snapshot.string()); !saved)
      graded.problem = saved.error().message;
  if (graded.problem.empty())
    if (auto made = make_tests(task, place.dir, place.host_ids, place.bounded); !made)
      graded.problem = made.error().message;
  if (graded.problem.empty())
    if (auto made = sandbox::make_workspace(place.dir.string(), {}, verifier_dir.string(),
                                            place.host_ids, place.bounded);
        !made)
      graded.problem = made.error().message;
  if (graded.problem.empty() && own_root && task.format != TaskFormat::SweBench) {
    std::optional<Grading> in_place = co_await detail::run_tests_in_session(
        task, place.dir / "tests", place.policy,
        scaled(task.test_timeout, settings.timeout_multiplier), *session,
        uses_stand_ins(task, place.policy, settings));
    session.reset();  // every process of the agent's sandbox ends here
    if (in_place) {
      if (in_place->problem.empty()) detail::collect_reports(task, place.root(), verifier_dir);
      co_return std::move(*in_place);
    }
  }
  session.reset();
  if (!graded.problem.empty()) co_return graded;
  sandbox::Policy grading = place.policy;
  if (!own_root) {
    grading.workspace.clear();  // the snapshot's workspace, copy-on-write
    grading.snapshot = snapshot.string();
  }
  grading.mounts.push_back({(place.dir / "tests").string(), "/tests", false});
  if (task.format == TaskFormat::Harbor) {
    grading.mounts.push_back({verifier_dir.string(), "/logs/verifier", false});
  } else {
    grading.mounts.push_back({verifier_dir.string(), kReportDir, false});
    // An instance on its image is graded from its test log, as SWE-bench grades it; its test
    // command runs as the harness gives it.
    if (task.environment.image_name.empty())
      grading.env.push_back(std::string("PYTEST_ADDOPTS=--junitxml=") + kReportDir +
                            "/junit.xml -o junit_family=xunit1");
    else
      grading.env.push_back("PIP_NO_INDEX=1");  // the install step finds nothing to fetch, fast
  }
  if (uses_stand_ins(task, grading, settings))
    if (auto installed = install_offline_tools(place.dir, grading); !installed) {
      graded.problem = installed.error().message;
      co_return graded;
    }
  grading.limits.timeout = scaled(task.test_timeout, settings.timeout_multiplier);
  sandbox::Command command{{"bash", "-c", grading_command(task)}, std::nullopt};
  auto result = co_await runtime.async_run(std::move(grading), std::move(command));
  if (result)
    graded.result = std::move(*result);
  else
    graded.problem = "starting the grading sandbox: " + result.error().message;
  co_return graded;
}

struct Verdict {
  FailureMode failure = FailureMode::None;
  std::string message;
};

// Whether the trial resolved its task, from the agent's ending and the grading's results, read
// the way the task's own harness reads them. Fills the report's tests, reward and resolved.
// A SWE-bench instance's test results: on its image, its test log read by its repository's parser,
// as the harness reads it; a local checkout's, pytest's report, or for another test command its
// summary in the output. nullopt, with `missing` saying why, when there are none.
std::optional<std::vector<TestResult>> swe_results(const Task& task, const Grading& graded,
                                                   const fs::path& verifier_dir,
                                                   std::string& missing) {
  missing = "the tests wrote no report (pytest's junit.xml)";
  if (!task.environment.image_name.empty()) {
    missing = "the test patch did not apply";
    if (graded.output().find(detail::kSweTestPatchFailed) != std::string::npos) return std::nullopt;
    missing = "the tests wrote no log";
    auto log = detail::read_test_log(verifier_dir);
    if (!log) return std::nullopt;
    return detail::parse_swe_log(task.swe.log_parser, *log);
  }
  if (task.swe.test_command.find("pytest") != std::string::npos)
    return read_test_report(verifier_dir);
  return parse_pytest_summary(graded.output());
}

Verdict judge(const Task& task, const Grading& graded, const fs::path& verifier_dir,
              TrialReport& report) {
  Verdict v{failure_of(report.agent), report.agent.message};
  if (!graded.problem.empty()) {
    v = {FailureMode::EnvironmentError, graded.problem};
  } else if (graded.result.timed_out) {
    if (v.failure == FailureMode::None) v.failure = FailureMode::TestTimeout;
  } else if (task.format == TaskFormat::SweBench) {
    std::string missing;
    auto tests = swe_results(task, graded, verifier_dir, missing);
    if (tests) report.tests = *tests;
    std::string why;
    report.resolved = tests && detail::swe_resolved(task, *tests, why);
    if (!report.resolved && v.failure == FailureMode::None) v.message = tests ? why : missing;
  } else if (task.format == TaskFormat::Harbor) {
    // The reward decides; the tests' own results, where the verifier left a report, are shown.
    if (auto tests = read_test_report(verifier_dir)) report.tests = *tests;
    report.reward = read_reward(verifier_dir);
    report.resolved = report.reward && *report.reward >= 1.0;
    if (!report.reward && v.failure == FailureMode::None)
      v = {FailureMode::TestFailed, "the verifier wrote no reward"};
  } else {
    auto tests = read_test_report(verifier_dir);
    if (tests) report.tests = *tests;
    report.resolved =
        tests && !tests->empty() &&
        std::all_of(tests->begin(), tests->end(), [](const TestResult& t) { return t.passed(); });
    if (!tests && v.failure == FailureMode::None)
      v.message = "the tests wrote no report (pytest's junit.xml)";
  }
  if (report.resolved)
    v.failure = FailureMode::None;
  else if (v.failure == FailureMode::None)
    v.failure = FailureMode::TestFailed;
  return v;
}

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
  TrialClock clock;
  TrialReport report{.task = task.name, .attempt = attempt};
  storage::Trial trial{.run = run, .task = task_id, .attempt = attempt};
  trial.prompt = orchestrator::initial_prompt(config, task.instruction);
  trial.info = {{"agent", to_string(settings.agent)},
                {"model", settings.agent == AgentKind::Model ? settings.model.name
                                                             : to_string(settings.agent)}};
  auto trial_id = co_await store.async_start_trial(std::move(trial));
  if (!trial_id) {
    report.failure_mode = FailureMode::EnvironmentError;
    report.message = "recording the trial: " + trial_id.error().message;
    co_return report;
  }
  report.trial = *trial_id;

  // 1. The environment: the trial's folder and ids, the agent's backend, its sandbox session.
  TrialPlace place(task, settings, report.trial);
  std::string problem = place.problem;
  std::unique_ptr<ModelBackend> backend;
  if (problem.empty()) {
    auto made = co_await make_agent(task, settings);
    if (made)
      backend = std::move(*made);
    else
      problem = made.error().message;
  }
  // The task's compose services, up until the tests have run; the agent joins their network.
  std::unique_ptr<detail::Services> services;
  if (problem.empty() && !task.environment.services.empty()) {
    auto started = co_await detail::Services::async_start(task, place.dir, place.bounded,
                                                          place.policy, runtime);
    if (started)
      services = std::move(*started);
    else
      problem = started.error().message;
  }
  std::unique_ptr<sandbox::Session> session;
  if (problem.empty()) {
    auto started = co_await start_environment(task, place.policy, runtime);
    if (started)
      session = std::move(*started);
    else
      problem = started.error().message;
  }
  if (!problem.empty()) {
    storage::TrialEnd end{.exit_status = to_string(orchestrator::ExitStatus::ExitEnvironment),
                          .resolved = false,
                          .failure_mode = to_string(FailureMode::EnvironmentError),
                          .info = {{"message", problem}}};
    const auto recorded = co_await store.async_finish_trial(report.trial, std::move(end));
    count(recorded, report);
    co_return clock.finish(report, FailureMode::EnvironmentError, problem);
  }

  // 2. The agent.
  ToolTime tool_time;
  auto tools = orchestrator::make_sandbox_tools(*session, place.agent_settings);
  AgentContext context{*backend, *tools, store, config, place.agent_settings, &tool_time};
  report.agent = co_await orchestrator::run_agent(context, report.trial);
  clock.task_ms += tool_time.tools_ms;

  // 3. Grading, in a fresh sandbox from what the agent left.
  const Grading graded = co_await grade(task, settings, place, session, runtime);
  clock.task_ms += static_cast<double>(graded.result.duration.count());
  Verdict verdict = judge(task, graded, place.dir / "verifier", report);

  // 4. The record.
  if (task.format == TaskFormat::SweBench && graded.problem.empty() && !graded.result.timed_out) {
    storage::Artifact prediction{report.trial, "patch", detail::swe_prediction(graded.output())};
    const auto put = co_await store.async_put_artifact(std::move(prediction));
    count(put, report);
  }
  storage::Artifact log{report.trial, "tests", graded.output()};  // named: GCC 12 (sandbox.hpp)
  const auto put = co_await store.async_put_artifact(std::move(log));
  count(put, report);
  Json tests = Json::array();
  for (const TestResult& t : report.tests)
    tests.push_back({{"name", t.name}, {"status", t.status}});
  storage::TrialEnd end{.exit_status = to_string(report.agent.exit_status),
                        .resolved = report.resolved,
                        .failure_mode = to_string(verdict.failure),
                        .info = {{"tests", tests}, {"message", verdict.message}}};
  if (report.reward) end.info["reward"] = *report.reward;
  // The harness's share so far (the last record and the snapshot's removal follow).
  end.info["harness_ms"] = clock.harness_ms();
  const auto recorded = co_await store.async_finish_trial(report.trial, std::move(end));
  count(recorded, report);
  std::error_code ec;
  fs::remove_all(place.dir / "snapshot", ec);
  co_return clock.finish(report, verdict.failure, verdict.message);
}

}  // namespace warren::eval
