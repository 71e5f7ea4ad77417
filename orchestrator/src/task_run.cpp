// One task on one repository: record the run, copy the repository into a workspace, hold a
// sandbox session on it for the agent, and take the diff of what the agent changed.
//
// The workspace's starting state is kept as a git tree object, written with an index of Warren's
// own in the workspace's git folder (warren-index), so that neither HEAD nor the repository's
// index moves, and the patch is the diff from that tree to the final state. The index starts as
// a copy of the repository's: the copy keeps sizes and mtimes, so git rehashes only what differs
// from the last commit, not every file of a large repository. Both git commands run inside
// sandboxes: the workspace is the agent's, and git obeys configuration (hooks, filters,
// fsmonitor) found in it.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "repo_copy.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

namespace {

namespace fs = std::filesystem;

// Selects Warren's index of the workspace (GIT_INDEX_FILE), made from the repository's index or
// empty, and adds the workspace's current files (.gitignore obeyed), making a repository first
// when the workspace is not one. Whole-second mtimes and sizes are what the copy keeps, so git
// compares only those (core.checkStat=minimal).
constexpr const char* kAddAll =
    "set -e; export GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=warren "
    "GIT_AUTHOR_EMAIL=warren@localhost; [ -e .git ] || git init -q; "
    "git_dir=$(git rev-parse --absolute-git-dir); export GIT_INDEX_FILE=$git_dir/warren-index; "
    "[ -f \"$GIT_INDEX_FILE\" ] || [ ! -f \"$git_dir/index\" ] || "
    "cp \"$git_dir/index\" \"$GIT_INDEX_FILE\"; "
    "git -c core.checkStat=minimal -c core.trustctime=false add -A; ";

Result<sandbox::ExecResult> succeeded(sandbox::Result<sandbox::ExecResult> r, const char* what) {
  if (!r) return tl::unexpected(Error{std::string(what) + ": " + r.error().message});
  if (r->exit_code != 0)
    return tl::unexpected(Error{std::string(what) + " failed: " + r->stderr_data.substr(0, 500)});
  return *r;
}

boost::asio::awaitable<Result<std::string>> workspace_tree(sandbox::Runtime& runtime,
                                                           sandbox::Policy policy) {
  sandbox::Command command{{"bash", "-c", std::string(kAddAll) + "git write-tree"}, std::nullopt};
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
  const std::string script = std::string(kAddAll) + "tree=$(git write-tree); " +
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

std::string size_text(std::uint64_t bytes) {
  char text[32];
  if (bytes >= (1u << 30))
    std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1u << 30));
  else if (bytes >= (1u << 20))
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1u << 20));
  else
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  return text;
}

// The note on how the workspace was made.
void note_made(Observer* observer, const std::string& how, bool git,
               std::chrono::steady_clock::time_point began) {
  if (!observer) return;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  char took[32];
  std::snprintf(took, sizeof took, "%.2f s", seconds);
  observer->on_note(how + (git ? " (the working tree as git lists it)" : " (everything)") + " in " +
                    took);
}

// The new workspace `dest` from the repository's files, as `o.copy` selects them: an overlay over
// the repository (at once, whatever its size) as root, or rootless in Warren's own namespaces;
// else, or where the repository's filesystem has no idmapped mounts, a copy. Either holds --disk
// more than the repository.
Result<void> make_run_workspace(const TaskRunOptions& o, const std::string& dest, unsigned host_ids,
                                Observer* observer) {
  std::vector<fs::path> excluded(o.exclude.begin(), o.exclude.end());
  excluded.push_back(o.workspaces);
  const auto began = std::chrono::steady_clock::now();
  sandbox::WorkspaceLimits limits{.bytes = o.policy.limits.disk_bytes};
  std::string overlay_problem;
  if (sandbox::can_mount_workspaces()) {
    auto hidden = detail::hidden_in_repository(o.repo, o.copy, excluded);
    if (!hidden) return tl::unexpected(hidden.error());
    auto made = sandbox::overlay_workspace({fs::canonical(o.repo).string()}, hidden->hidden, dest,
                                           host_ids, limits);
    if (made) {
      note_made(observer, "an overlay over " + o.repo, hidden->git, began);
      return {};
    }
    overlay_problem = made.error().message;
  }
  auto listing = detail::list_repository(o.repo, o.copy, excluded);
  if (!listing) return tl::unexpected(listing.error());
  limits.beyond_copy = true;  // as root: a filesystem of its own, the copy and --disk more
  auto copied = sandbox::make_workspace(o.repo, listing->files, dest, host_ids, limits);
  if (!copied) return tl::unexpected(Error{copied.error().message});
  if (!overlay_problem.empty() && observer) observer->on_note(overlay_problem + ": copying");
  note_made(observer,
            "copied " + std::to_string(copied->entries) + " files and folders, " +
                size_text(copied->bytes) + ", of " + o.repo,
            listing->git, began);
  return {};
}

// A new run: its records, its workspace, the workspace's starting tree.
boost::asio::awaitable<Result<Started>> start_new(const TaskRunOptions& o, ModelBackend& backend,
                                                  sandbox::Runtime& runtime, storage::Store& store,
                                                  const Config& config, unsigned host_ids,
                                                  Observer* observer) {
  if (!fs::is_directory(o.repo)) co_return tl::unexpected(Error{"no repository at " + o.repo});
  Started s;
  // Named by the repository's absolute path, with no trailing '/' (`--repo .`).
  const std::string name = (fs::absolute(o.repo) / "").lexically_normal().parent_path().string();
  auto run =
      store.create_run(storage::Run{.kind = "run", .name = name, .settings = settings_to_json(o)});
  if (!run) co_return tl::unexpected(Error{run.error().message});
  s.run = *run;
  auto task = store.add_task(storage::Task{.run = s.run, .name = "task", .instruction = o.task});
  if (!task) co_return tl::unexpected(Error{task.error().message});
  storage::Trial trial{.run = s.run, .task = *task, .attempt = 0};
  trial.prompt = initial_prompt(config, o.task);
  trial.info = {{"agent", "warren"},
                {"model", o.model.name},
                {"backend", to_string(backend.backend())},
                {"repo", fs::absolute(o.repo).string()},
                {"tools", config.tools}};
  auto trial_id = co_await store.async_start_trial(std::move(trial));
  if (!trial_id) co_return tl::unexpected(Error{trial_id.error().message});
  s.trial = *trial_id;

  std::error_code ec;
  fs::create_directories(o.workspaces, ec);
  s.workspace = (fs::absolute(o.workspaces) / ("trial-" + std::to_string(s.trial))).string();
  (void)sandbox::remove_workspace(s.workspace);  // a leftover of a database that was deleted
  if (auto copied = make_run_workspace(o, s.workspace, host_ids, observer); !copied)
    co_return tl::unexpected(copied.error());
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
  if (s.workspace.empty() || s.base_tree.empty())
    return tl::unexpected(Error{"run " + std::to_string(id) +
                                " stopped before its workspace was ready: start it again"});
  // A bounded workspace's mount point stays, empty, when its filesystem has gone (a reboot;
  // rootless, the end of Warren's own namespaces): a workspace always holds its starting tree.
  std::error_code ec;
  if (!fs::is_directory(s.workspace, ec) || fs::is_empty(s.workspace, ec))
    return tl::unexpected(Error{"run " + std::to_string(id) + "'s workspace " + s.workspace +
                                " is gone (a bounded workspace does not outlive a reboot or, "
                                "rootless, Warren's own namespaces): start it again"});
  return s;
}

// The host ids of a run's sandboxes, held until it ends: a new range, or the one a resumed run's
// workspace was made for (its owner's), which no one else may hold meanwhile.
Result<sandbox::IdRange> run_ids(const TaskRunOptions& o, const Started& started) {
  if (!o.resume || geteuid() != 0) {
    auto taken = sandbox::IdRange::take();
    if (!taken) return tl::unexpected(Error{taken.error().message});
    return std::move(*taken);
  }
  struct stat st {};
  if (::stat(started.workspace.c_str(), &st) != 0)
    return tl::unexpected(Error{"the workspace " + started.workspace + " is gone"});
  auto held = sandbox::IdRange::take(st.st_uid);
  if (!held)
    return tl::unexpected(
        Error{"run " + std::to_string(*o.resume) + "'s workspace: " + held.error().message});
  return std::move(*held);
}

// The agent's part: a session on the workspace, the loop, the session's end.
boost::asio::awaitable<AgentOutcome> run_agent_in(const TaskRunOptions& o, const Started& started,
                                                  const sandbox::Policy& policy,
                                                  ModelBackend& backend, sandbox::Runtime& runtime,
                                                  storage::Store& store, const Config& config,
                                                  Observer* observer) {
  auto session = co_await sandbox::Session::async_start(runtime, policy);
  // Event details are named before each co_await (GCC 12 destroys temporaries there twice).
  Json detail;
  if (!session) {
    detail = {{"message", session.error().message}};
    co_await record_event(store, started.trial, "error", std::move(detail));
    co_return AgentOutcome{.exit_status = ExitStatus::ExitEnvironment,
                           .message = session.error().message};
  }
  detail = {{"workspace", started.workspace}};
  co_await record_event(store, started.trial, o.resume ? "resumed" : "started", std::move(detail));
  auto tools = make_sandbox_tools(**session, o.settings);
  AgentContext context{backend, *tools, store, config, o.settings, observer, o.cancelled};
  AgentOutcome outcome = co_await run_agent(context, started.trial);
  detail = {{"exit_status", to_string(outcome.exit_status)},
            {"session_alive", (*session)->alive()}};
  session->reset();  // its background processes end before the diff is taken
  co_await record_event(store, started.trial, "stopped", std::move(detail));
  co_return outcome;
}

// The patch of a run that ended, stored with the trial's end; the workspace removed unless kept.
boost::asio::awaitable<Result<void>> finish(const TaskRunOptions& o, const sandbox::Policy& policy,
                                            const Started& started, TaskRunResult& result,
                                            sandbox::Runtime& runtime, storage::Store& store,
                                            Observer* observer) {
  auto patch = co_await workspace_diff(runtime, policy, started.base_tree);
  Json detail;
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
  storage::TrialEnd end{.exit_status = to_string(result.outcome.exit_status),
                        .info = {{"message", result.outcome.message}}};
  if (auto finished = co_await store.async_finish_trial(result.trial, std::move(end)); !finished)
    co_return tl::unexpected(Error{finished.error().message});
  if (auto done = store.finish_run(result.run); !done)
    co_return tl::unexpected(Error{done.error().message});
  // The patch is stored: the copy is no longer needed, unless asked for (or the diff failed).
  if (patch && !o.keep_workspace) {
    if (auto removed = sandbox::remove_workspace(started.workspace); removed)
      result.workspace.clear();
    else if (observer)
      observer->on_warning(removed.error().message);
  }
  co_return Result<void>{};
}

}  // namespace

Json settings_to_json(const TaskRunOptions& o) {
  Json settings = {{"repo", fs::absolute(o.repo).string()},
                   {"task", o.task},
                   {"model", o.model.name},
                   {"thinking", to_string(o.settings.thinking)},
                   {"max_steps", o.settings.limits.max_steps},
                   {"max_cost_usd", o.settings.limits.max_cost_usd},
                   {"timeout_s", o.settings.limits.timeout.count()},
                   {"copy", to_string(o.copy)},
                   {"keep_workspace", o.keep_workspace}};
  settings.update(o.extra_settings);
  return settings;
}

const char* to_string(RepoCopy copy) {
  return copy == RepoCopy::Git ? "git" : "all";
}

Result<RepoCopy> parse_repo_copy(const std::string& text) {
  if (text == "git") return RepoCopy::Git;
  if (text == "all") return RepoCopy::All;
  return tl::unexpected(Error{"--copy must be git or all, not \"" + text + "\""});
}

std::string workspaces_folder(const std::string& db) {
  const fs::path file(db);
  return (file.parent_path() / "workspaces" / file.filename()).string();
}

boost::asio::awaitable<Result<TaskRunResult>> run_task(TaskRunOptions o, ModelBackend& backend,
                                                       sandbox::Runtime& runtime,
                                                       storage::Store& store, const Config& config,
                                                       Observer* observer) {
  Result<Started> started;
  if (o.resume) {
    started = find_resumable(*o.resume, store);
    if (!started) co_return tl::unexpected(started.error());
  }
  auto taken = run_ids(o, started ? *started : Started{});
  if (!taken) co_return tl::unexpected(taken.error());
  if (!o.resume) {
    started = co_await start_new(o, backend, runtime, store, config, taken->base(), observer);
    if (!started) co_return tl::unexpected(started.error());
  }
  TaskRunResult result{
      .run = started->run, .trial = started->trial, .workspace = started->workspace};
  sandbox::Policy policy = o.policy;
  policy.workspace = started->workspace;
  policy.host_ids = taken->base();
  // Bytecode caches would otherwise land in the workspace, and in the patch.
  policy.env.push_back("PYTHONDONTWRITEBYTECODE=1");
  result.outcome =
      co_await run_agent_in(o, *started, policy, backend, runtime, store, config, observer);
  // Cancelled (Ctrl-C): the trial stays open and its workspace kept, for --resume.
  if (result.outcome.exit_status == ExitStatus::Cancelled) co_return result;
  if (auto finished = co_await finish(o, policy, *started, result, runtime, store, observer);
      !finished)
    co_return tl::unexpected(finished.error());
  co_return result;
}

}  // namespace warren::orchestrator
