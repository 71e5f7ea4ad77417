// Store's reads: one read connection, opened on first use. In WAL mode it sees every write that
// has committed when a read begins, and never waits for the writer.
#include <functional>

#include "store_impl.hpp"

namespace warren::storage {

using detail::Statement;

Result<detail::Connection*> Store::Impl::read_connection() {
  if (!reader) {
    auto opened = detail::Connection::open(path.string(), true);
    if (!opened) return tl::unexpected(opened.error());
    reader.emplace(std::move(*opened));
  }
  return &*reader;
}

namespace {

Json json_column(const Statement& st, int column) {
  auto parsed = Json::parse(st.text(column), nullptr, false);
  return parsed.is_discarded() ? Json() : parsed;
}

std::optional<bool> optional_bool(const Statement& st, int column) {
  if (st.is_null(column)) return std::nullopt;
  return st.int64(column) != 0;
}

// Runs `sql` with `bind`, calling `row` for each result row.
Result<void> query(Store::Impl& impl, const char* sql, const std::function<void(Statement&)>& bind,
                   const std::function<void(const Statement&)>& row) {
  std::lock_guard lock(impl.read_lock);
  auto db = impl.read_connection();
  if (!db) return tl::unexpected(db.error());
  auto st = (*db)->prepare(sql);
  if (!st) return tl::unexpected(st.error());
  bind(*st);
  for (;;) {
    auto more = st->step();
    if (!more) return tl::unexpected(more.error());
    if (!*more) return {};
    row(*st);
  }
}

template <class T>
Result<T> exactly_one(Result<std::vector<T>> rows, const std::string& what) {
  if (!rows) return tl::unexpected(rows.error());
  if (rows->empty()) return tl::unexpected(Error{"no " + what});
  return std::move(rows->front());
}

constexpr const char* kRunColumns =
    "r.id, r.kind, r.name, r.settings, r.status, r.created_ms, r.finished_ms";

Run run_row(const Statement& st) {
  return Run{st.int64(0), st.text(1),  st.text(2), json_column(st, 3),
             st.text(4),  st.int64(5), st.int64(6)};
}

constexpr const char* kTrialColumns =
    "id, run_id, task_id, attempt, status, exit_status, resolved, failure_mode, prompt, info, "
    "started_ms, finished_ms";

Trial trial_row(const Statement& st) {
  Trial t;
  t.id = st.int64(0);
  t.run = st.int64(1);
  t.task = st.int64(2);
  t.attempt = static_cast<int>(st.int64(3));
  t.status = st.text(4);
  t.exit_status = st.text(5);
  t.resolved = optional_bool(st, 6);
  t.failure_mode = st.text(7);
  t.prompt = json_column(st, 8);
  t.info = json_column(st, 9);
  t.started_ms = st.int64(10);
  t.finished_ms = st.int64(11);
  return t;
}

Result<std::vector<Trial>> trials_where(Store::Impl& impl, const std::string& where,
                                        std::int64_t id) {
  std::vector<Trial> trials;
  const std::string sql = std::string("SELECT ") + kTrialColumns + " FROM trials WHERE " + where +
                          " = ?1 ORDER BY task_id, attempt, id";
  auto ok = query(
      impl, sql.c_str(), [&](Statement& st) { st.bind(1, id); },
      [&](const Statement& st) { trials.push_back(trial_row(st)); });
  if (!ok) return tl::unexpected(ok.error());
  return trials;
}

}  // namespace

namespace {

// Runs with totals over their trials in one pass: trial counts from trials, step and token sums
// from model_calls. Every run, or only `only` when it is set.
Result<std::vector<RunSummary>> summarize(Store::Impl& impl, std::optional<RunId> only) {
  const std::string sql = std::string("SELECT ") + kRunColumns + R"sql(,
      (SELECT count(*) FROM tasks t WHERE t.run_id = r.id),
      (SELECT count(*) FROM trials t WHERE t.run_id = r.id),
      (SELECT count(*) FROM trials t WHERE t.run_id = r.id AND t.status = 'finished'),
      (SELECT count(*) FROM trials t WHERE t.run_id = r.id AND t.resolved = 1),
      (SELECT count(*) FROM steps s JOIN trials t ON s.trial_id = t.id WHERE t.run_id = r.id),
      m.prompt, m.completion, m.cached, m.cost
    FROM runs r LEFT JOIN (
      SELECT t.run_id AS run_id, sum(c.prompt_tokens) AS prompt,
             sum(c.completion_tokens) AS completion, sum(c.cached_tokens) AS cached,
             sum(c.cost_usd) AS cost
      FROM model_calls c JOIN trials t ON c.trial_id = t.id
      WHERE ?1 IS NULL OR t.run_id = ?1 GROUP BY t.run_id
    ) m ON m.run_id = r.id
    WHERE ?1 IS NULL OR r.id = ?1
    ORDER BY r.id)sql";
  std::vector<RunSummary> runs;
  auto ok = query(
      impl, sql.c_str(),
      [&](Statement& st) {
        if (only) st.bind(1, *only);
      },
      [&](const Statement& st) {
        RunSummary s;
        s.run = run_row(st);
        s.tasks = static_cast<int>(st.int64(7));
        s.trials = static_cast<int>(st.int64(8));
        s.finished = static_cast<int>(st.int64(9));
        s.resolved = static_cast<int>(st.int64(10));
        s.steps = st.int64(11);
        s.prompt_tokens = st.int64(12);
        s.completion_tokens = st.int64(13);
        s.cached_tokens = st.int64(14);
        s.cost_usd = st.real(15);
        runs.push_back(std::move(s));
      });
  if (!ok) return tl::unexpected(ok.error());
  return runs;
}

}  // namespace

Result<std::vector<RunSummary>> Store::list_runs() const {
  return summarize(*impl_, std::nullopt);
}

Result<RunSummary> Store::summarize_run(RunId id) const {
  return exactly_one<RunSummary>(summarize(*impl_, id),
                                 "run " + std::to_string(id) + " in " + path().string());
}

Result<Run> Store::load_run(RunId id) const {
  std::vector<Run> runs;
  const std::string sql = std::string("SELECT ") + kRunColumns + " FROM runs r WHERE r.id = ?1";
  auto ok = query(
      *impl_, sql.c_str(), [&](Statement& st) { st.bind(1, id); },
      [&](const Statement& st) { runs.push_back(run_row(st)); });
  if (!ok) return tl::unexpected(ok.error());
  return exactly_one<Run>(std::move(runs), "run " + std::to_string(id) + " in " + path().string());
}

Result<std::vector<Task>> Store::load_tasks(RunId run) const {
  std::vector<Task> tasks;
  auto ok = query(
      *impl_,
      "SELECT id, run_id, name, instruction, metadata FROM tasks WHERE run_id = ?1 ORDER BY id",
      [&](Statement& st) { st.bind(1, run); },
      [&](const Statement& st) {
        tasks.push_back(Task{st.int64(0), st.int64(1), st.text(2), st.text(3), json_column(st, 4)});
      });
  if (!ok) return tl::unexpected(ok.error());
  return tasks;
}

Result<std::vector<Trial>> Store::load_trials(RunId run) const {
  return trials_where(*impl_, "run_id", run);
}

Result<Trial> Store::load_trial(TrialId trial) const {
  return exactly_one<Trial>(trials_where(*impl_, "id", trial), "trial " + std::to_string(trial));
}

Result<std::vector<Step>> Store::load_steps(TrialId trial) const {
  std::vector<Step> steps;
  auto ok = query(
      *impl_,
      "SELECT step, created_ms, content, reasoning_content, observation FROM steps "
      "WHERE trial_id = ?1 ORDER BY step",
      [&](Statement& st) { st.bind(1, trial); },
      [&](const Statement& st) {
        Step s;
        s.trial = trial;
        s.index = static_cast<int>(st.int64(0));
        s.created_ms = st.int64(1);
        s.content = st.text(2);
        s.reasoning_content = st.text(3);
        s.observation = st.text(4);
        steps.push_back(std::move(s));
      });
  if (!ok) return tl::unexpected(ok.error());
  // Steps are numbered 0, 1, 2, ... (the agent loop writes them in order), so a step's number is
  // its place in `steps`. A row out of that range belongs to no loaded step and is skipped.
  auto step_at = [&](std::int64_t index) -> Step* {
    return index >= 0 && index < static_cast<std::int64_t>(steps.size()) &&
                   steps[static_cast<std::size_t>(index)].index == index
               ? &steps[static_cast<std::size_t>(index)]
               : nullptr;
  };
  ok = query(
      *impl_,
      "SELECT step, attempt, backend, model, prompt_tokens, completion_tokens, cached_tokens, "
      "latency_ms, cost_usd, error FROM model_calls WHERE trial_id = ?1 ORDER BY step, attempt",
      [&](Statement& st) { st.bind(1, trial); },
      [&](const Statement& st) {
        if (Step* s = step_at(st.int64(0)))
          s->model_calls.push_back(ModelCall{static_cast<int>(st.int64(1)), st.text(2), st.text(3),
                                             st.int64(4), st.int64(5), st.int64(6), st.real(7),
                                             st.real(8), st.text(9)});
      });
  if (!ok) return tl::unexpected(ok.error());
  ok = query(
      *impl_,
      "SELECT step, call_index, call_id, name, arguments, result, exit_code, duration_ms, "
      "truncated FROM tool_calls WHERE trial_id = ?1 ORDER BY step, call_index",
      [&](Statement& st) { st.bind(1, trial); },
      [&](const Statement& st) {
        Step* s = step_at(st.int64(0));
        if (!s) return;
        ToolCall t{static_cast<int>(st.int64(1)),
                   st.text(2),
                   st.text(3),
                   st.text(4),
                   st.text(5),
                   std::nullopt,
                   st.real(7),
                   st.int64(8) != 0};
        if (!st.is_null(6)) t.exit_code = static_cast<int>(st.int64(6));
        s->tool_calls.push_back(std::move(t));
      });
  if (!ok) return tl::unexpected(ok.error());
  return steps;
}

Result<std::vector<SandboxEvent>> Store::load_events(TrialId trial) const {
  std::vector<SandboxEvent> events;
  auto ok = query(
      *impl_, "SELECT at_ms, kind, detail FROM sandbox_events WHERE trial_id = ?1 ORDER BY id",
      [&](Statement& st) { st.bind(1, trial); },
      [&](const Statement& st) {
        events.push_back(SandboxEvent{trial, st.int64(0), st.text(1), json_column(st, 2)});
      });
  if (!ok) return tl::unexpected(ok.error());
  return events;
}

Result<std::optional<Artifact>> Store::load_artifact(TrialId trial, const std::string& name) const {
  std::optional<Artifact> found;
  auto ok = query(
      *impl_, "SELECT content FROM artifacts WHERE trial_id = ?1 AND name = ?2",
      [&](Statement& st) { st.bind(1, trial).bind(2, name); },
      [&](const Statement& st) {
        found = Artifact{trial, name, st.text(0)};
      });
  if (!ok) return tl::unexpected(ok.error());
  return found;
}

}  // namespace warren::storage
