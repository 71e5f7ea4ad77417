// Merging shard databases: the eval runs of every source become one run in the target, with their
// tasks (one per name), trials, steps, calls, events and artifacts, and their times kept. Ids are
// the target's own (shards number theirs independently); the run's settings say where it came
// from.
#include <filesystem>
#include <map>
#include <optional>

#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

// Copies `run` of `from` into the target run `id`; `task_ids` maps task names to target tasks.
Result<void> copy_run(const storage::Store& from, const storage::Run& run, storage::Store& to,
                      const std::string& source, storage::RunId id,
                      std::map<std::string, storage::TaskId>& by_name) {
  auto tasks = from.load_tasks(run.id);
  auto trials = from.load_trials(run.id);
  if (!tasks || !trials)
    return tl::unexpected(Error{source + ": cannot read run " + std::to_string(run.id)});
  std::map<storage::TaskId, storage::TaskId> task_ids;
  for (storage::Task task : *tasks) {
    if (!by_name.count(task.name)) {
      task.run = id;
      auto added = to.add_task(task);
      if (!added) return tl::unexpected(Error{added.error().message});
      by_name[task.name] = *added;
    }
    task_ids[task.id] = by_name[task.name];
  }
  for (storage::Trial trial : *trials) {
    const storage::TrialId old = trial.id;
    trial.run = id;
    trial.task = task_ids[trial.task];
    auto added = to.start_trial(trial);
    if (!added) return tl::unexpected(Error{added.error().message});
    auto steps = from.load_steps(old);
    auto events = from.load_events(old);
    if (!steps || !events)
      return tl::unexpected(Error{source + ": cannot read trial " + std::to_string(old)});
    for (storage::Step step : *steps) {
      step.trial = *added;
      if (auto kept = to.append_step(step); !kept)
        return tl::unexpected(Error{kept.error().message});
    }
    for (storage::SandboxEvent event : *events) {
      event.trial = *added;
      if (auto kept = to.add_event(event); !kept)
        return tl::unexpected(Error{kept.error().message});
    }
    for (const char* name : {"patch", "tests"})
      if (auto artifact = from.load_artifact(old, name); artifact && *artifact) {
        storage::Artifact copy_of = **artifact;
        copy_of.trial = *added;
        if (auto kept = to.put_artifact(copy_of); !kept)
          return tl::unexpected(Error{kept.error().message});
      }
    if (trial.status == "finished") {
      storage::TrialEnd end{.finished_ms = trial.finished_ms,
                            .exit_status = trial.exit_status,
                            .resolved = trial.resolved,
                            .failure_mode = trial.failure_mode};
      if (auto done = to.finish_trial(*added, end); !done)
        return tl::unexpected(Error{done.error().message});
    }
  }
  return {};
}

}  // namespace

Result<std::vector<storage::RunId>> merge_databases(storage::Store& store,
                                                    const std::vector<std::string>& sources) {
  std::optional<storage::RunId> target;
  std::map<std::string, storage::TaskId> by_name;
  for (const std::string& source : sources) {
    if (!std::filesystem::is_regular_file(source))
      return tl::unexpected(Error{"no database at " + source});
    if (std::filesystem::equivalent(source, store.path()))
      return tl::unexpected(Error{source + " is the database being merged into"});
    auto from = storage::Store::open(source);
    if (!from) return tl::unexpected(Error{from.error().message});
    auto runs = (*from)->list_runs();
    if (!runs) return tl::unexpected(Error{runs.error().message});
    for (const storage::RunSummary& s : *runs) {
      if (s.run.kind != "eval") continue;
      if (!target) {  // the first run's settings stand for the merged one
        storage::Run run = s.run;
        run.settings["shard"] = "merged";
        run.settings["merged_from"] = sources;
        auto id = store.create_run(run);
        if (!id) return tl::unexpected(Error{id.error().message});
        target = *id;
      }
      if (auto copied = copy_run(**from, s.run, store, source, *target, by_name); !copied)
        return tl::unexpected(copied.error());
    }
  }
  if (!target) return tl::unexpected(Error{"no eval run in the databases given"});
  if (auto done = store.finish_run(*target); !done)
    return tl::unexpected(Error{done.error().message});
  return std::vector<storage::RunId>{*target};
}

}  // namespace warren::eval
