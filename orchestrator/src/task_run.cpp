// One task on one repository: record the run, copy the repository into a workspace, hold a
// sandbox session on it for the agent, and take the diff of what the agent changed.
//
// The workspace's starting state is kept as a git tree object (written with a private index, so
// neither HEAD nor the repository's index moves), and the patch is the diff from that tree to the
// final state. Both git commands run inside sandboxes: the workspace is the agent's, and git
// obeys configuration (hooks, filters, fsmonitor) found in it.
#include <filesystem>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

namespace {

namespace fs = std::filesystem;

// Prints the tree of the workspace's current files (.gitignore obeyed), making a repository
// first when the workspace is not one.
constexpr const char* kWriteTree =
    "set -e; export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=warren "
    "GIT_AUTHOR_EMAIL=warren@localhost; "
    "[ -e .git ] || git init -q; dir=$(mktemp -d); index=$dir/index; trap 'rm -rf \"$dir\"' EXIT; "
    "GIT_INDEX_FILE=$index git add -A; GIT_INDEX_FILE=$index git write-tree";

Result<sandbox::ExecResult> succeeded(sandbox::Result<sandbox::ExecResult> r, const char* what) {
  if (!r) return tl::unexpected(Error{std::string(what) + ": " + r.error().message});
  if (r->exit_code != 0)
    return tl::unexpected(Error{std::string(what) + " failed: " + r->stderr_data.substr(0, 500)});
  return *r;
}

boost::asio::awaitable<Result<std::string>> workspace_tree(sandbox::Runtime& runtime,
                                                           sandbox::Policy policy) {
  sandbox::Command command{{"bash", "-c", kWriteTree}, std::nullopt};
  auto r = succeeded(co_await runtime.async_run(std::move(policy), std::move(command)),
                     "recording the workspace's state");
  if (!r) co_return tl::unexpected(r.error());
  std::string tree = r->stdout_data;
  while (!tree.empty() && (tree.back() == '\n' || tree.back() == '\r')) tree.pop_back();
  if (tree.size() != 40 && tree.size() != 64)
    co_return tl::unexpected(
        Error{"recording the workspace's state: git printed \"" + tree + "\""});
  co_return tree;
}

boost::asio::awaitable<Result<std::string>> workspace_diff(sandbox::Runtime& runtime,
                                                           sandbox::Policy policy,
                                                           const std::string& base) {
  const std::string script = std::string(kWriteTree) +
                             " >/dev/null; tree=$(GIT_INDEX_FILE=$index git write-tree); " +
                             "git diff --binary --no-color --no-ext-diff " + base + " \"$tree\"";
  policy.limits.output_bytes = 256 << 20;  // a patch is not cut
  sandbox::Command command{{"bash", "-c", script}, std::nullopt};
  auto r = succeeded(co_await runtime.async_run(std::move(policy), std::move(command)),
                     "taking the diff");
  if (!r) co_return tl::unexpected(r.error());
  co_return r->stdout_data;
}

// A sandbox event for the trial's record. Losing one is not worth ending the run over.
boost::asio::awaitable<void> record_event(storage::Store& store, storage::TrialId trial,
                                          const char* kind, Json detail) {
  storage::SandboxEvent event{.trial = trial, .kind = kind, .detail = std::move(detail)};
  (void)co_await store.async_add_event(std::move(event));
}

struct Started {
  storage::RunId run = 0;
  storage::TrialId trial = 0;
  std::string workspace;
  std::string base_tree;
};

// A new run: its records, its workspace, the workspace's starting tree.
boost::asio::awaitable<Result<Started>> start_new(const TaskRunOptions& o, ModelBackend& backend,
                                                  sandbox::Runtime& runtime, storage::Store& store,
                                                  const Config& config, unsigned host_ids) {
  if (!fs::is_directory(o.repo)) co_return tl::unexpected(Error{"no repository at " + o.repo});
  Started s;
  auto run = store.create_run(
      storage::Run{.kind = "run", .name = o.repo, .settings = settings_to_json(o)});
  if (!run) co_return tl::unexpected(Error{run.error().message});
  s.run = *run;
  auto task = store.add_task(storage::Task{.run = s.run, .name = "task", .instruction = o.task});
  if (!task) co_return tl::unexpected(Error{task.error().message});
  storage::Trial trial{.run = s.run, .task = *task, .attempt = 0};
  trial.prompt = initial_prompt(config, o.task);
  trial.info = {{"agent", "warren"},
                {"model", o.model.name},
                {"backend", backend.backend()},
                {"repo", fs::absolute(o.repo).string()},
                {"tools", config.tools}};
  auto trial_id = co_await store.async_start_trial(std::move(trial));
  if (!trial_id) co_return tl::unexpected(Error{trial_id.error().message});
  s.trial = *trial_id;

  std::error_code ec;
  fs::create_directories(o.workspaces, ec);
  s.workspace = (fs::absolute(o.workspaces) / ("trial-" + std::to_string(s.trial))).string();
  fs::remove_all(s.workspace, ec);  // a leftover of a database that was deleted
  if (auto copied = sandbox::copy_workspace(o.repo, s.workspace, host_ids); !copied)
    co_return tl::unexpected(Error{copied.error().message});
  sandbox::Policy policy = o.policy;
  policy.workspace = s.workspace;
  policy.host_ids = host_ids;
  auto tree = co_await workspace_tree(runtime, std::move(policy));
  if (!tree) co_return tl::unexpected(tree.error());
  s.base_tree = *tree;
  Json info = {{"workspace", s.workspace}, {"base_tree", s.base_tree}};
  if (auto noted = co_await store.async_annotate_trial(s.trial, std::move(info)); !noted)
    co_return tl::unexpected(Error{noted.error().message});
  co_return s;
}

// A run that stopped before its trial finished: the trial, its workspace and starting tree.
Result<Started> find_resumable(storage::RunId id, storage::Store& store) {
  auto trials = store.load_trials(id);
  if (!trials) return tl::unexpected(Error{trials.error().message});
  if (trials->empty())
    return tl::unexpected(Error{"run " + std::to_string(id) + " has no trial to resume"});
  const storage::Trial& t = trials->back();
  if (t.status == "finished")
    return tl::unexpected(Error{"run " + std::to_string(id) + " has finished (" + t.exit_status +
                                "): there is nothing to resume"});
  Started s{id, t.id, t.info.value("workspace", ""), t.info.value("base_tree", "")};
  if (s.workspace.empty() || s.base_tree.empty() || !fs::is_directory(s.workspace))
    return tl::unexpected(Error{"run " + std::to_string(id) +
                                " stopped before its workspace was ready: start it again"});
  return s;
}

}  // namespace

Json settings_to_json(const TaskRunOptions& o) {
  Json settings = {{"repo", fs::absolute(o.repo).string()},
                   {"task", o.task},
                   {"model", o.model.name},
                   {"thinking", to_string(o.settings.thinking)},
                   {"max_steps", o.settings.limits.max_steps},
                   {"max_cost_usd", o.settings.limits.max_cost_usd},
                   {"timeout_s", o.settings.limits.timeout.count()}};
  settings.update(o.extra_settings);
  return settings;
}

boost::asio::awaitable<Result<TaskRunResult>> run_task(TaskRunOptions o, ModelBackend& backend,
                                                       sandbox::Runtime& runtime,
                                                       storage::Store& store, const Config& config,
                                                       Observer* observer) {
  // The run's sandboxes run in host ids of their own, held until it ends. A resumed run's
  // workspace keeps the range it was made for (Policy::host_ids 0: its owner's).
  auto ids = sandbox::IdRange::take();
  if (!ids) co_return tl::unexpected(Error{ids.error().message});
  const unsigned host_ids = o.resume ? 0 : ids->base();
  Result<Started> started;
  if (o.resume)
    started = find_resumable(*o.resume, store);
  else
    started = co_await start_new(o, backend, runtime, store, config, host_ids);
  if (!started) co_return tl::unexpected(started.error());
  TaskRunResult result{
      .run = started->run, .trial = started->trial, .workspace = started->workspace};

  sandbox::Policy policy = o.policy;
  policy.workspace = started->workspace;
  policy.host_ids = host_ids;
  // Bytecode caches would otherwise land in the workspace, and in the patch.
  policy.env.push_back("PYTHONDONTWRITEBYTECODE=1");
  auto session = co_await sandbox::Session::async_start(runtime, policy);
  // Event details are named before each co_await (GCC 12 destroys temporaries there twice).
  Json detail;
  if (!session) {
    result.outcome =
        AgentOutcome{.exit_status = "exit_environment", .message = session.error().message};
    detail = {{"message", session.error().message}};
    co_await record_event(store, result.trial, "error", std::move(detail));
  } else {
    detail = {{"workspace", started->workspace}};
    co_await record_event(store, result.trial, o.resume ? "resumed" : "started", std::move(detail));
    auto tools = make_sandbox_tools(**session, o.settings);
    AgentContext context{backend, *tools, store, config, o.settings, observer, o.cancelled};
    result.outcome = co_await run_agent(context, started->trial);
    detail = {{"exit_status", result.outcome.exit_status}, {"session_alive", (*session)->alive()}};
    session->reset();  // its background processes end before the diff is taken
    co_await record_event(store, result.trial, "stopped", std::move(detail));
  }

  auto patch = co_await workspace_diff(runtime, policy, started->base_tree);
  if (patch)
    detail = {{"bytes", patch->size()}};
  else
    detail = {{"message", patch.error().message}};
  co_await record_event(store, result.trial, patch ? "diff" : "error", std::move(detail));
  if (patch) {
    result.patch = *patch;
    storage::Artifact artifact{result.trial, "patch", result.patch};
    if (auto kept = co_await store.async_put_artifact(std::move(artifact)); !kept)
      co_return tl::unexpected(Error{kept.error().message});
  } else if (observer) {
    observer->on_warning(patch.error().message);
  }
  storage::TrialEnd end{.exit_status = result.outcome.exit_status,
                        .info = {{"message", result.outcome.message}}};
  if (auto finished = co_await store.async_finish_trial(result.trial, std::move(end)); !finished)
    co_return tl::unexpected(Error{finished.error().message});
  if (auto done = store.finish_run(result.run); !done)
    co_return tl::unexpected(Error{done.error().message});
  co_return result;
}

}  // namespace warren::orchestrator
