// warren/storage: the SQLite store of runs, tasks, trials (attempts), steps, model calls, tool
// calls, sandbox events and artifacts. One database file per project (.warren/warren.db), WAL mode.
//
// Writes go through one writer thread that commits whatever has queued up in one transaction, so
// thousands of agent loops writing at once cost one fsync-free commit per batch. A write's
// completion runs after its transaction has committed: an agent loop that waits for it before
// moving on loses at most the step in flight when the process is killed.
//
// Reads open their own connections (WAL lets them run beside the writer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace warren::storage {

using Json = nlohmann::ordered_json;

struct Error {
  std::string message;  // one line a user can act on
};

template <class T>
using Result = tl::expected<T, Error>;

using RunId = std::int64_t;
using TaskId = std::int64_t;
using TrialId = std::int64_t;

// Milliseconds since the Unix epoch: every *_ms time column.
std::int64_t now_ms();

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

struct Run {
  RunId id = 0;
  std::string kind;                // "run" (warren run) or "eval" (warren eval)
  std::string name;                // the suite, or the repository for a single run
  Json settings = Json::object();  // model, thinking, limits, agent, ...: what --resume reuses
  std::string status = "running";  // running, finished
  std::int64_t created_ms = 0;
  std::int64_t finished_ms = 0;
};

struct Task {
  TaskId id = 0;
  RunId run = 0;
  std::string name;  // unique within a run
  std::string instruction;
  Json metadata = Json::object();  // source format, category, paths, ...
};

struct Trial {
  TrialId id = 0;
  RunId run = 0;
  TaskId task = 0;
  int attempt = 0;
  std::string status = "running";  // running, finished
  std::string exit_status;         // submitted, exit_steps, exit_cost, ... (empty while running)
  std::optional<bool> resolved;    // graded trials only
  std::string failure_mode;        // eval: agent_timeout, test_failed, ... (empty when none)
  Json prompt = Json::array();     // the messages the loop started from (system, user)
  Json info = Json::object();      // model, backend, grading details, ...
  std::int64_t started_ms = 0;
  std::int64_t finished_ms = 0;
};

struct ModelCall {
  int attempt = 0;  // 0 for the first try of a step's request, 1.. for retries
  std::string backend;
  std::string model;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;  // prompt tokens served from the provider's cache
  double latency_ms = 0;
  double cost_usd = 0;
  std::string error;  // empty when the call succeeded
};

struct ToolCall {
  int index = 0;  // position in the model's call list; results go back in this order
  std::string call_id;
  std::string name;
  std::string arguments;  // JSON text
  std::string result;     // what the model was shown
  std::optional<int> exit_code;
  double duration_ms = 0;
  bool truncated = false;
};

// One turn of an agent loop: the model's answer and what the tools made of it.
struct Step {
  TrialId trial = 0;
  int index = 0;  // 0, 1, 2, ... within the trial
  std::int64_t created_ms = 0;
  std::string content;
  std::string reasoning_content;
  std::vector<ToolCall> tool_calls;
  std::vector<ModelCall> model_calls;  // every attempt, failed ones included
  std::string observation;  // a user-turn note back to the model (format error, reminder), if any
};

struct SandboxEvent {
  TrialId trial = 0;
  std::int64_t at_ms = 0;
  std::string kind;  // started, command, timeout, oom, stopped, error, ...
  Json detail = Json::object();
};

struct Artifact {
  TrialId trial = 0;
  std::string name;  // "patch", "log", ...
  std::string content;
};

struct TrialEnd {
  std::int64_t finished_ms = 0;  // 0: now
  std::string exit_status;
  std::optional<bool> resolved;
  std::string failure_mode;
  Json info = Json::object();  // merged into the trial's info
};

// What `warren runs list` shows: one run with totals over its trials.
struct RunSummary {
  Run run;
  int tasks = 0;
  int trials = 0;
  int finished = 0;
  int resolved = 0;
  std::int64_t steps = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
  double cost_usd = 0;
};

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

struct Options {
  // After this many queued writes the writer commits without waiting for more.
  int max_batch = 4096;
  // Durability against power loss as well as process death (SQLite synchronous=FULL); off, a
  // killed process still loses nothing that committed.
  bool sync_to_disk = false;
};

class Store {
 public:
  // Opens (creating it and its folder when missing) and brings the schema up to date.
  static Result<std::unique_ptr<Store>> open(const std::filesystem::path& file,
                                             Options options = {});
  ~Store();  // commits what is queued, then stops the writer
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const;
  int schema_version() const;

  // Writes. The blocking forms wait for their commit; the async_ forms are C++20 coroutines that
  // resume on the caller's executor once their commit is done; the callback forms run `done` on
  // the writer thread after the commit.
  Result<RunId> create_run(const Run& run);
  Result<TaskId> add_task(const Task& task);
  // Merges `metadata` into the task's (JSON merge patch): what was learnt of it after it was added
  // (an image build that failed).
  Result<void> annotate_task(TaskId task, const Json& metadata);
  Result<TrialId> start_trial(const Trial& trial);
  Result<void> append_step(const Step& step);
  Result<void> finish_trial(TrialId trial, const TrialEnd& end);
  // Merges `info` into the trial's info (JSON merge patch): what a resume needs to know.
  Result<void> annotate_trial(TrialId trial, const Json& info);
  Result<void> finish_run(RunId run);
  Result<void> add_event(const SandboxEvent& event);
  Result<void> put_artifact(const Artifact& artifact);

  boost::asio::awaitable<Result<TrialId>> async_start_trial(Trial trial);
  boost::asio::awaitable<Result<void>> async_append_step(Step step);
  boost::asio::awaitable<Result<void>> async_finish_trial(TrialId trial, TrialEnd end);
  boost::asio::awaitable<Result<void>> async_annotate_trial(TrialId trial, Json info);
  boost::asio::awaitable<Result<void>> async_add_event(SandboxEvent event);
  boost::asio::awaitable<Result<void>> async_put_artifact(Artifact artifact);

  // Reads (a connection of their own; they see every committed write).
  Result<std::vector<RunSummary>> list_runs() const;
  Result<RunSummary> summarize_run(RunId run) const;  // one run of list_runs
  Result<Run> load_run(RunId run) const;
  Result<std::vector<Task>> load_tasks(RunId run) const;
  Result<std::vector<Trial>> load_trials(RunId run) const;
  Result<Trial> load_trial(TrialId trial) const;
  Result<std::vector<Step>> load_steps(TrialId trial) const;
  Result<std::vector<SandboxEvent>> load_events(TrialId trial) const;
  Result<std::optional<Artifact>> load_artifact(TrialId trial, const std::string& name) const;

  struct Impl;

 private:
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

// One trial as Harbor's Agent Trajectory Interchange Format (ATIF): session_id, agent, steps with
// reasoning, tool calls, observations and per-step metrics, final_metrics.
Result<Json> export_trial_atif(const Store& store, TrialId trial);

// A whole run as plain JSON: the run, its tasks, and every trial with its steps, model calls,
// tool calls, events and artifacts.
Result<Json> export_run_json(const Store& store, RunId run);

}  // namespace warren::storage
