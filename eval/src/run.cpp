// Running a suite: the tasks this shard owns, N trials at once, each task's attempts one after
// another, everything recorded as it goes so that --resume skips what finished.
#include <fnmatch.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/this_coro.hpp>

#include "images.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

using Clock = std::chrono::steady_clock;

// What the machine can hold: trials are mostly waiting (on a model, on a command), so a few per
// core, as many as memory allows at each trial's limit.
int default_concurrency(const sandbox::Limits& limits, std::size_t tasks) {
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  std::uint64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  for (std::string key; meminfo >> key;) {
    std::uint64_t kib = 0;
    meminfo >> kib;
    if (key == "MemAvailable:") available = kib * 1024;
    meminfo.ignore(64, '\n');
  }
  std::uint64_t by_memory = limits.memory_bytes ? available / limits.memory_bytes : 64;
  const auto n = std::min<std::uint64_t>(
      {static_cast<std::uint64_t>(cores) * 8, std::max<std::uint64_t>(by_memory, 2), 64});
  return static_cast<int>(std::min<std::uint64_t>(n, std::max<std::size_t>(tasks, 1)));
}

Json settings_json(const EvalOptions& o) {
  return {{"suite", o.suite},
          {"agent", to_string(o.settings.agent)},
          {"model", o.settings.agent == AgentKind::Model ? o.settings.model.name
                                                         : to_string(o.settings.agent)},
          {"attempts", o.attempts},
          {"filter", o.filter},
          {"shard", std::to_string(o.shard) + "/" + std::to_string(o.shards)},
          {"timeout_multiplier", o.settings.timeout_multiplier},
          {"rootfs", o.settings.rootfs},
          {"network", o.settings.network == sandbox::Network::Outbound ? "outbound" : "none"},
          {"stand_ins", o.settings.stand_ins}};
}

Json task_metadata(const Task& t) {
  return {{"format", to_string(t.format)},
          {"category", t.category},
          {"difficulty", t.difficulty},
          {"tags", t.tags},
          {"dir", t.dir},
          {"load_error", t.load_error}};
}

// The shared state of one eval: a queue of tasks and the counts the progress shows.
struct Work {
  struct Item {
    Task* task;
    storage::TaskId id;
    std::vector<int> attempts;  // the attempts still to run, in order
  };
  std::deque<Item> queue;
  EvalProgress progress;
  EvalResult result;
  Clock::time_point started = Clock::now();
  double trial_seconds = 0;  // summed over finished trials
  int concurrency = 1;
  detail::ImageBuilds* builds = nullptr;
};

// The next item whose task's image is settled, taken off the queue; nothing when every item left
// waits for a build (or the queue is empty).
std::optional<Work::Item> take_ready(Work& work) {
  auto ready = std::find_if(work.queue.begin(), work.queue.end(), [&](const Work::Item& i) {
    return !work.builds || !work.builds->waiting(*i.task);
  });
  if (ready == work.queue.end()) return std::nullopt;
  Work::Item item = std::move(*ready);
  work.queue.erase(ready);
  return item;
}

boost::asio::awaitable<void> worker(
    Work& work, const EvalOptions& options, sandbox::Runtime& runtime, storage::Store& store,
    const Config& config,
    const std::function<void(const EvalProgress&, const TrialReport*)>& on_progress,
    storage::RunId run) {
  while (!work.queue.empty()) {
    std::optional<Work::Item> ready = take_ready(work);
    if (!ready) {  // every task left waits for its image
      co_await work.builds->async_wait_settled();
      continue;
    }
    Work::Item item = std::move(*ready);
    for (int attempt : item.attempts) {
      ++work.progress.running;
      if (on_progress) on_progress(work.progress, nullptr);
      TrialReport report = co_await run_trial(*item.task, attempt, options.settings, runtime, store,
                                              config, run, item.id);
      --work.progress.running;
      ++work.progress.done;
      (report.resolved                                        ? work.progress.resolved
       : report.failure_mode == FailureMode::EnvironmentError ? work.progress.not_run
                                                              : work.progress.failed)++;
      work.trial_seconds += report.total_ms / 1000;
      const int left = work.progress.total - work.progress.done;
      work.progress.eta_s = work.trial_seconds / work.progress.done * left / work.concurrency;
      if (on_progress) on_progress(work.progress, &report);
      work.result.trials.push_back(std::move(report));
    }
  }
}

}  // namespace

boost::asio::awaitable<Result<EvalResult>> run_eval(
    EvalOptions o, sandbox::Runtime& runtime, storage::Store& store, const Config& config,
    std::function<void(const EvalProgress&, const TrialReport*)> on_progress) {
  if (o.attempts < 1) co_return tl::unexpected(Error{"--attempts must be at least 1"});
  if (o.shards < 1 || o.shard < 0 || o.shard >= o.shards)
    co_return tl::unexpected(Error{"--shard must be I/N with 0 <= I < N"});
  auto suite = load_suite(o.suite);
  if (!suite) co_return tl::unexpected(suite.error());

  // This shard's tasks, filtered: a deterministic slice of the sorted suite.
  std::vector<Task*> mine;
  for (std::size_t i = 0; i < suite->size(); ++i) {
    Task& t = (*suite)[i];
    if (static_cast<int>(i % static_cast<std::size_t>(o.shards)) != o.shard) continue;
    if (!o.filter.empty() && fnmatch(o.filter.c_str(), t.name.c_str(), 0) != 0) continue;
    mine.push_back(&t);
  }
  if (mine.empty())
    co_return tl::unexpected(Error{"no task of " + o.suite + " matches (filter, shard)"});
  // An embedded model is opened once, its weights shared by every trial, and a checkpoint that
  // cannot be opened ends the run here rather than failing each trial.
  if (o.settings.agent == AgentKind::Model &&
      o.settings.model.backend == orchestrator::BackendKind::Embedded && !o.settings.batcher) {
    auto engine = orchestrator::open_embedded_engine(o.settings.model);
    if (!engine) co_return tl::unexpected(engine.error());
    o.settings.batcher = std::move(*engine);
  }
  Work work;
  storage::RunId run = 0;
  std::map<std::string, storage::TaskId> task_ids;
  std::map<std::pair<storage::TaskId, int>, bool> finished;
  if (o.resume) {
    run = *o.resume;
    auto tasks = store.load_tasks(run);
    auto trials = store.load_trials(run);
    if (!tasks || !trials)
      co_return tl::unexpected(Error{(!tasks ? tasks.error() : trials.error()).message});
    for (const storage::Task& t : *tasks) task_ids[t.name] = t.id;
    for (const storage::Trial& t : *trials) {
      if (t.status == "finished") {
        finished[{t.task, t.attempt}] = true;
      } else {  // cut short when the last eval was stopped: closed, and run again
        storage::TrialEnd end{.exit_status = "interrupted", .failure_mode = "interrupted"};
        (void)co_await store.async_finish_trial(t.id, std::move(end));
      }
      // What a killed eval left of a trial, its bounded filesystems included, goes now (a
      // finished trial's too: the kill may have come before its cleanup).
      if (!o.settings.keep_workspaces)
        (void)sandbox::remove_workspace(
            (std::filesystem::path(o.settings.workspaces) / ("trial-" + std::to_string(t.id)))
                .string());
    }
  } else {
    auto created = store.create_run(
        storage::Run{.kind = "eval", .name = o.suite, .settings = settings_json(o)});
    if (!created) co_return tl::unexpected(Error{created.error().message});
    run = *created;
  }
  work.result.run = run;
  for (Task* t : mine) {
    if (!task_ids.count(t->name)) {
      auto id = store.add_task(storage::Task{.run = run,
                                             .name = t->name,
                                             .instruction = t->instruction,
                                             .metadata = task_metadata(*t)});
      if (!id) co_return tl::unexpected(Error{id.error().message});
      task_ids[t->name] = *id;
    }
    Work::Item item{t, task_ids[t->name], {}};
    for (int a = 0; a < o.attempts; ++a)
      if (!finished.count({item.id, a})) item.attempts.push_back(a);
    work.progress.total += static_cast<int>(item.attempts.size());
    if (!item.attempts.empty()) work.queue.push_back(std::move(item));
  }

  // Images are built while the trials of the tasks that need none (or whose image is cached) run:
  // a build takes seconds to minutes, and a task's trials wait for its own image only. A build
  // that fails is the task's load_error, in the store too (its trials say it, as not run).
  std::vector<Task*> to_run;
  for (const Work::Item& item : work.queue) to_run.push_back(item.task);
  const auto executor = co_await boost::asio::this_coro::executor;
  detail::ImageBuilds builds(to_run, o.settings, o.log, executor, [&](Task& t) {
    if (!t.load_error.empty())
      (void)store.annotate_task(task_ids[t.name], {{"load_error", t.load_error}});
  });
  work.builds = &builds;
  work.concurrency =
      o.concurrency > 0 ? o.concurrency : default_concurrency(o.settings.limits, work.queue.size());
  const int workers = std::min<int>(work.concurrency, static_cast<int>(work.queue.size()));
  std::vector<boost::asio::awaitable<void>> tasks;
  for (int i = 0; i < workers; ++i)
    tasks.push_back(worker(work, o, runtime, store, config, on_progress, run));
  co_await orchestrator::run_all(std::move(tasks));
  if (auto done = store.finish_run(run); !done)
    co_return tl::unexpected(Error{done.error().message});
  co_return std::move(work.result);
}

}  // namespace warren::eval
