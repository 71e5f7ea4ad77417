// `warren run` (one agent on one repository) and `warren runs list|show|export`.
#include "run_commands.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "io.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::cli {

namespace {

namespace orch = warren::orchestrator;
using Json = nlohmann::ordered_json;

struct RunFlags {
  std::string repo, task, task_file, model, base_url, api_key_env, thinking = "high", config;
  std::string db = ".warren/warren.db", patch_out, script, copy = "git";
  int max_steps = 100;
  double max_cost = 0, timeout = 0;
  std::int64_t resume = 0;
  bool json = false, keep_workspace = false;
};

int fail(const std::string& command, const std::string& message) {
  std::cerr << "warren " << command << ": " << message << "\n";
  return 2;
}

std::string tokens_text(std::int64_t n) {
  char text[32];
  if (n >= 1000000)
    std::snprintf(text, sizeof text, "%.2fM", static_cast<double>(n) / 1e6);
  else if (n >= 1000)
    std::snprintf(text, sizeof text, "%.1fk", static_cast<double>(n) / 1e3);
  else
    std::snprintf(text, sizeof text, "%lld", static_cast<long long>(n));
  return text;
}

std::string dollars(double usd) {
  char text[32];
  std::snprintf(text, sizeof text, "$%.4f", usd);
  return text;
}

// Progress on stderr, one line per step (nothing with --json but warnings).
class TerminalObserver final : public orch::Observer {
 public:
  explicit TerminalObserver(bool quiet) : quiet_(quiet) {}
  void on_step(const orch::StepReport& r) override {
    if (quiet_) return;
    std::string tools;
    for (const std::string& t : r.tools) tools += (tools.empty() ? "" : ", ") + t;
    std::cerr << "step " << r.step + 1 << "  "
              << (tools.empty() ? "(no tool call)" : printable(tools)) << "  tokens "
              << tokens_text(r.usage.prompt_tokens) << " in (" << tokens_text(r.usage.cached_tokens)
              << " cached), " << tokens_text(r.usage.completion_tokens) << " out  total "
              << tokens_text(r.total_tokens) << " " << dollars(r.total_cost_usd)
              << (r.note.empty() ? "" : "  [" + r.note + "]") << "\n";
  }
  void on_warning(const std::string& message) override {
    std::cerr << "warren run: warning: " << message << "\n";
  }
  void on_note(const std::string& message) override {
    if (!quiet_) std::cerr << printable(message) << "\n";
  }

 private:
  bool quiet_;
};

// The options of a new run from the flags, or of a resumed one from what its run stored.
orch::Result<orch::TaskRunOptions> task_options(const RunFlags& f, const orch::Config& config,
                                                storage::Store& store) {
  orch::TaskRunOptions o;
  RunFlags stored = f;
  if (f.resume) {
    auto run = store.load_run(f.resume);
    if (!run) return tl::unexpected(orch::Error{run.error().message});
    const Json& s = run->settings;
    stored.repo = s.value("repo", "");
    stored.task = s.value("task", "");
    stored.model = s.value("model", "");
    stored.script = s.value("script", "");
    stored.thinking = s.value("thinking", "high");
    stored.max_steps = s.value("max_steps", 100);
    stored.max_cost = s.value("max_cost_usd", 0.0);
    stored.timeout = s.value("timeout_s", 0.0);
    stored.keep_workspace = f.keep_workspace || s.value("keep_workspace", false);
    o.resume = f.resume;
  } else {
    if (f.repo.empty()) return tl::unexpected(orch::Error{"--repo is required"});
    if (f.task.empty() == f.task_file.empty())
      return tl::unexpected(
          orch::Error{"give the task with exactly one of --task and --task-file"});
    if (!f.task_file.empty()) {
      std::string problem;
      auto text = read_input(f.task_file, problem);
      if (!text) return tl::unexpected(orch::Error{problem});
      stored.task = *text;
    }
  }
  o.repo = stored.repo;
  o.task = stored.task;
  if (!stored.script.empty()) {
    o.model = orch::ModelConfig{
        .name = "scripted", .backend = orch::BackendKind::Scripted, .script = stored.script};
  } else {
    auto model = config.model(stored.model);
    if (!model) return tl::unexpected(model.error());
    o.model = *model;
    if (!f.base_url.empty()) o.model.base_url = f.base_url;
    if (!f.api_key_env.empty()) o.model.api_key_env = f.api_key_env;
  }
  auto thinking = orch::parse_thinking(stored.thinking);
  if (!thinking) return tl::unexpected(thinking.error());
  o.settings.thinking = *thinking;
  o.settings.limits.max_steps = stored.max_steps;
  o.settings.limits.max_cost_usd = stored.max_cost;
  o.settings.limits.timeout = std::chrono::seconds(static_cast<long long>(stored.timeout));
  o.settings.context_window = o.model.context_window;
  o.settings.max_output_tokens = o.model.max_output_tokens;
  o.policy.limits.memory_bytes = 4ULL << 30;
  o.policy.limits.disk_bytes = 4ULL << 30;
  o.policy.limits.pids = 1024;
  o.policy.limits.cpus = 2;
  o.policy.limits.timeout = o.settings.command_timeout;
  auto copy = orch::parse_repo_copy(f.copy);
  if (!copy) return tl::unexpected(copy.error());
  o.copy = *copy;
  o.keep_workspace = stored.keep_workspace;
  o.workspaces = orch::workspaces_folder(f.db);
  // Warren's own state, wherever it is: the database's files and every database's workspaces.
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) o.exclude.push_back(f.db + suffix);
  o.exclude.push_back(std::filesystem::path(o.workspaces).parent_path().string());
  return o;
}

Json result_json(const orch::TaskRunResult& r) {
  return {{"run", r.run},
          {"trial", r.trial},
          {"exit_status", orch::to_string(r.outcome.exit_status)},
          {"message", r.outcome.message},
          {"steps", r.outcome.steps},
          {"prompt_tokens", r.outcome.usage.prompt_tokens},
          {"completion_tokens", r.outcome.usage.completion_tokens},
          {"cached_tokens", r.outcome.usage.cached_tokens},
          {"cost_usd", r.outcome.cost_usd},
          {"workspace", r.workspace},
          {"patch", r.patch}};
}

// The coroutine's answer, carried out of the io_context.
struct Finished {
  std::optional<orch::Result<orch::TaskRunResult>> result;
  std::string unreachable;  // the model's server could not be reached: nothing started
};

boost::asio::awaitable<void> drive(orch::TaskRunOptions options, orch::ModelBackend& backend,
                                   sandbox::Runtime& runtime, storage::Store& store,
                                   const orch::Config& config, orch::Observer& observer,
                                   Finished& finished, boost::asio::signal_set& signals) {
  if (auto reached = co_await backend.check_reachable(); !reached) {
    finished.unreachable = reached.error().message;
    signals.cancel();
    co_return;
  }
  finished.result =
      co_await orch::run_task(std::move(options), backend, runtime, store, config, &observer);
  signals.cancel();  // lets io_context.run() return
}

int run_command(const RunFlags& f) {
  auto config = orch::Config::load(f.config);
  if (!config) return fail("run", config.error().message);
  auto store = storage::Store::open(f.db);
  if (!store) return fail("run", store.error().message);
  auto options = task_options(f, *config, **store);
  if (!options) return fail("run", options.error().message);
  if (!f.script.empty())
    options->extra_settings["script"] = std::filesystem::absolute(f.script).string();
  bool cancelled = false;
  options->cancelled = &cancelled;

  boost::asio::io_context io;
  auto backend = orch::make_backend(options->model, io.get_executor());
  if (!backend) return fail("run", backend.error().message);
  sandbox::Runtime runtime;
  TerminalObserver observer(f.json);
  Finished finished;
  // Ctrl-C ends the run after the step in flight, which is recorded: --resume continues it.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) cancelled = true;
  });
  auto task = drive(*options, **backend, runtime, **store, *config, observer, finished, signals);
  boost::asio::co_spawn(io, std::move(task), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();

  if (!finished.unreachable.empty()) return fail("run", finished.unreachable);
  if (!finished.result || !*finished.result)
    return fail("run",
                finished.result ? finished.result->error().message : "the run did not finish");
  const orch::TaskRunResult& r = **finished.result;
  if (!f.patch_out.empty()) {
    std::ofstream out(f.patch_out, std::ios::binary);
    if (!(out << r.patch)) return fail("run", "cannot write the patch to " + f.patch_out);
  }
  if (f.json) {
    write_stdout(json_text(result_json(r), 2) + "\n");
  } else {
    std::cerr << orch::to_string(r.outcome.exit_status)
              << (r.outcome.message.empty() ? "" : ": " + r.outcome.message) << " after "
              << r.outcome.steps << " steps, "
              << tokens_text(r.outcome.usage.prompt_tokens + r.outcome.usage.completion_tokens)
              << " tokens, " << dollars(r.outcome.cost_usd) << "  (run " << r.run << ")\n";
    if (r.outcome.exit_status == orch::ExitStatus::Cancelled)
      std::cerr << "warren run --resume " << r.run << " --db " << f.db << " continues it\n";
    if (f.patch_out.empty()) write_stdout(r.patch);
  }
  return r.outcome.exit_status == orch::ExitStatus::Submitted ? 0 : 1;
}

}  // namespace

void add_run_command(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<RunFlags>();
  CLI::App* run =
      app.add_subcommand("run", "run an agent on a copy of a repository until it submits");
  run->add_option("--repo", f->repo, "the repository (a directory; never changed)");
  run->add_option("--task", f->task, "what the agent should do");
  run->add_option("--task-file", f->task_file, "the task, from a file (- for stdin)");
  run->add_option("--model", f->model, "a model named in configs/models.json");
  run->add_option("--base-url", f->base_url, "the API's base URL, in place of the model's");
  run->add_option("--api-key-env", f->api_key_env, "the environment variable holding the API key");
  run->add_option("--thinking", f->thinking, "off, high or max")
      ->check(CLI::IsMember({"off", "high", "max"}));
  run->add_option("--max-steps", f->max_steps, "steps before exit_steps")
      ->check(CLI::PositiveNumber);
  run->add_option("--max-cost", f->max_cost, "USD before exit_cost (0: none)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--timeout", f->timeout, "seconds before exit_time (0: none)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--config", f->config,
                  "a JSON file over the built-in configs (models, prices, tools)");
  run->add_option("--db", f->db, "the database (default .warren/warren.db)");
  run->add_option("--patch-out", f->patch_out, "write the patch here instead of stdout");
  run->add_option("--script", f->script,
                  "replay raw completions from this file instead of a model");
  run->add_option("--resume", f->resume, "continue run ID from its last recorded step");
  run->add_option("--copy", f->copy,
                  "what the workspace starts with: git (the working tree as git lists it, the "
                  "default) or all (everything); never Warren's own state")
      ->check(CLI::IsMember({"git", "all"}));
  run->add_flag("--keep-workspace", f->keep_workspace,
                "keep the workspace once the run has finished (it is removed, the patch stored)");
  run->add_flag("--json", f->json, "print one JSON object at the end, no progress");
  run->callback([f, &exit_code] { exit_code = run_command(*f); });
}

}  // namespace warren::cli
