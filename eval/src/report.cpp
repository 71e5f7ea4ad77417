// The report of an eval run, computed from what the store holds (so it is the same for a run in
// progress, a resumed one, or merged shards).
#include <algorithm>
#include <cmath>
#include <map>

#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t index =
      static_cast<std::size_t>(p * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

double pass_at_k(int n, int c, int k) {
  if (n <= 0 || k <= 0) return 0;
  if (n - c < k) return 1;
  // 1 - prod_{i = n-c+1}^{n} (1 - k / i), the numerically stable form of 1 - C(n-c,k)/C(n,k).
  double miss = 1;
  for (int i = n - c + 1; i <= n; ++i) miss *= 1.0 - static_cast<double>(k) / i;
  return 1 - miss;
}

Result<Json> swe_predictions(const storage::Store& store, storage::RunId id) {
  auto run = store.load_run(id);
  auto tasks = store.load_tasks(id);
  auto trials = store.load_trials(id);
  if (!run || !tasks || !trials)
    return tl::unexpected(Error{!run ? run.error().message : "reading run " + std::to_string(id)});
  const std::string model = run->settings.value("model", "warren");
  Json out = Json::object();
  for (const storage::Task& task : *tasks) {
    if (task.metadata.value("format", "") != "swe-bench") continue;
    const storage::Trial* last = nullptr;
    for (const storage::Trial& t : *trials)
      if (t.task == task.id && t.status == "finished" && t.exit_status != "interrupted") last = &t;
    if (!last) continue;
    auto patch = store.load_artifact(last->id, "patch");
    out[task.name] = {{"model_name_or_path", model},
                      {"instance_id", task.name},
                      {"model_patch", patch && *patch ? (*patch)->content : ""}};
  }
  return out;
}

Result<Json> eval_report(const storage::Store& store, storage::RunId id) {
  auto run = store.load_run(id);
  if (!run) return tl::unexpected(Error{run.error().message});
  auto tasks = store.load_tasks(id);
  auto trials = store.load_trials(id);
  if (!tasks || !trials)
    return tl::unexpected(Error{(!tasks ? tasks.error() : trials.error()).message});
  auto summary = store.summarize_run(id);
  Json totals = Json::object();
  if (summary)
    totals = {{"prompt_tokens", summary->prompt_tokens},
              {"completion_tokens", summary->completion_tokens},
              {"cached_tokens", summary->cached_tokens},
              {"cost_usd", summary->cost_usd},
              {"steps", summary->steps}};

  std::map<storage::TaskId, std::vector<const storage::Trial*>> by_task;
  for (const storage::Trial& t : *trials)
    if (t.status == "finished" && t.exit_status != "interrupted") by_task[t.task].push_back(&t);

  Json out_tasks = Json::array();
  std::map<std::string, std::pair<int, int>> categories;  // resolved, tasks
  std::map<std::string, int> failure_modes;
  int never_ran = 0;  // trials whose task or environment could not be set up
  std::vector<double> durations, harness_ms;
  int resolved_tasks = 0, counted = 0, k_max = 0;
  std::vector<std::pair<int, int>> attempts_per_task;  // (n, c)
  for (const storage::Task& task : *tasks) {
    const auto& attempts = by_task[task.id];
    int c = 0;
    Json out_attempts = Json::array();
    for (const storage::Trial* t : attempts) {
      const bool resolved = t->resolved.value_or(false);
      c += resolved ? 1 : 0;
      const double seconds = static_cast<double>(t->finished_ms - t->started_ms) / 1000;
      durations.push_back(seconds);
      if (t->info.contains("harness_ms")) harness_ms.push_back(t->info["harness_ms"].get<double>());
      if (!resolved) ++failure_modes[t->failure_mode.empty() ? "unknown" : t->failure_mode];
      if (t->failure_mode == "environment_error") ++never_ran;
      double cost = 0;
      std::int64_t tokens = 0;
      if (auto steps = store.load_steps(t->id))
        for (const storage::Step& step : *steps)
          for (const storage::ModelCall& m : step.model_calls) {
            cost += m.cost_usd;
            tokens += m.prompt_tokens + m.completion_tokens;
          }
      out_attempts.push_back({{"trial", t->id},
                              {"cost_usd", cost},
                              {"tokens", tokens},
                              {"attempt", t->attempt},
                              {"resolved", resolved},
                              {"failure_mode", t->failure_mode},
                              {"exit_status", t->exit_status},
                              {"message", t->info.value("message", "")},
                              {"duration_s", seconds}});
    }
    const std::string category = task.metadata.value("category", "uncategorised");
    const int n = static_cast<int>(attempts.size());
    if (n > 0) {
      ++counted;
      attempts_per_task.push_back({n, c});
      k_max = std::max(k_max, n);
      categories[category].second += 1;
      if (c > 0) {
        ++resolved_tasks;
        categories[category].first += 1;
      }
    }
    out_tasks.push_back({{"name", task.name},
                         {"category", category},
                         {"difficulty", task.metadata.value("difficulty", "")},
                         {"load_error", task.metadata.value("load_error", "")},
                         {"resolved", c > 0},
                         {"attempts", out_attempts}});
  }
  Json pass = Json::object();
  for (int k = 1; k <= k_max; ++k) {
    double sum = 0;
    int tasks_with_k = 0;
    for (const auto& [n, c] : attempts_per_task)
      if (n >= k) {
        sum += pass_at_k(n, c, k);
        ++tasks_with_k;
      }
    if (tasks_with_k) pass["pass@" + std::to_string(k)] = sum / tasks_with_k;
  }
  Json by_category = Json::object();
  for (const auto& [name, rc] : categories)
    by_category[name] = {{"resolved", rc.first},
                         {"tasks", rc.second},
                         {"rate", rc.second ? static_cast<double>(rc.first) / rc.second : 0.0}};
  Json modes = Json::object();
  for (const auto& [mode, count] : failure_modes) modes[mode] = count;
  // Broken: tasks the oracle could not solve make the suite suspect; the CLI says which.
  Json unresolved = Json::array();
  for (const Json& t : out_tasks)
    if (!t["resolved"].get<bool>() && !t["attempts"].empty()) unresolved.push_back(t["name"]);

  return Json{
      {"run", id},
      {"suite", run->name},
      {"status", run->status},
      {"settings", run->settings},
      {"tasks_run", counted},
      {"resolved", resolved_tasks},
      {"resolved_rate", counted ? static_cast<double>(resolved_tasks) / counted : 0.0},
      {"pass_at_k", pass},
      {"trials", static_cast<int>(durations.size())},
      {"never_ran", never_ran},
      {"failure_modes", modes},
      {"by_category", by_category},
      {"duration_s",
       {{"p50", percentile(durations, 0.5)},
        {"p90", percentile(durations, 0.9)},
        {"max", percentile(durations, 1.0)}}},
      {"harness_ms", {{"p50", percentile(harness_ms, 0.5)}, {"p90", percentile(harness_ms, 0.9)}}},
      {"usage", totals},
      {"unresolved", unresolved},
      {"tasks", out_tasks}};
}

}  // namespace warren::eval
