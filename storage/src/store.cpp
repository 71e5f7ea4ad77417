// Store: opening, the writes (as writer operations) and their blocking and coroutine forms.
#include <sys/stat.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "schema.hpp"
#include "store_impl.hpp"

namespace warren::storage {

namespace {

// Stored JSON as text. What a record holds comes from models, agents' commands and task files,
// and a byte that is not UTF-8 (a tool's output cut inside a character, a Latin-1 file name)
// would make nlohmann throw on the writer's thread: it is stored as U+FFFD instead.
std::string json_text(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

using detail::Connection;
using detail::Writer;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr const char* kInsertRun =
    "INSERT INTO runs (kind, name, settings, status, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kInsertTask =
    "INSERT INTO tasks (run_id, name, instruction, metadata) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kInsertTrial =
    "INSERT INTO trials (run_id, task_id, attempt, status, prompt, info, started_ms) "
    "VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6)";
constexpr const char* kInsertStep =
    "INSERT INTO steps (trial_id, step, created_ms, content, reasoning_content, observation) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr const char* kInsertModelCall =
    "INSERT INTO model_calls (trial_id, step, attempt, backend, model, prompt_tokens, "
    "completion_tokens, cached_tokens, latency_ms, cost_usd, error) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr const char* kInsertToolCall =
    "INSERT INTO tool_calls (trial_id, step, call_index, call_id, name, arguments, result, "
    "exit_code, duration_ms, truncated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
// A trial's info is merged, not replaced: start-time settings stay beside the grading details.
constexpr const char* kFinishTrial =
    "UPDATE trials SET status = 'finished', exit_status = ?2, resolved = ?3, failure_mode = ?4, "
    "info = json_patch(info, ?5), finished_ms = ?6 WHERE id = ?1";
constexpr const char* kAnnotateTrial =
    "UPDATE trials SET info = json_patch(info, ?2) WHERE id = ?1";
constexpr const char* kAnnotateTask =
    "UPDATE tasks SET metadata = json_patch(metadata, ?2) WHERE id = ?1";
constexpr const char* kFinishRun =
    "UPDATE runs SET status = 'finished', finished_ms = ?2 WHERE id = ?1";
constexpr const char* kInsertEvent =
    "INSERT INTO sandbox_events (trial_id, at_ms, kind, detail) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kPutArtifact =
    "INSERT OR REPLACE INTO artifacts (trial_id, name, content, created_ms) VALUES (?1, ?2, ?3, "
    "?4)";

std::int64_t or_now(std::int64_t ms) {
  return ms > 0 ? ms : now_ms();
}

// An UPDATE that matched nothing names a row that does not exist.
Result<std::int64_t> changed_one(Connection& db, const char* what, std::int64_t id) {
  if (sqlite3_changes(db.handle()) == 1) return 0;
  return tl::unexpected(Error{std::string("no ") + what + " " + std::to_string(id)});
}

// Runs `sql` with `bind` applied, inside the writer's transaction; yields the new row's id.
template <class Bind>
Result<std::int64_t> insert(Writer::Statements& s, const char* sql, Bind bind) {
  auto stmt = s.get(sql);
  if (!stmt) return tl::unexpected(stmt.error());
  bind(**stmt);
  if (auto ran = (*stmt)->run(); !ran) return tl::unexpected(ran.error());
  return s.db().last_insert_id();
}

Writer::Operation run_op(const Run& run) {
  return [run](Writer::Statements& s) {
    return insert(s, kInsertRun, [&](detail::Statement& st) {
      st.bind(1, run.kind).bind(2, run.name).bind(3, json_text(run.settings)).bind(4, run.status);
      st.bind(5, or_now(run.created_ms));
    });
  };
}

Writer::Operation task_op(const Task& task) {
  return [task](Writer::Statements& s) {
    return insert(s, kInsertTask, [&](detail::Statement& st) {
      st.bind(1, task.run).bind(2, task.name).bind(3, task.instruction);
      st.bind(4, json_text(task.metadata));
    });
  };
}

Writer::Operation trial_op(const Trial& trial) {
  return [trial](Writer::Statements& s) {
    return insert(s, kInsertTrial, [&](detail::Statement& st) {
      st.bind(1, trial.run).bind(2, trial.task).bind(3, trial.attempt);
      st.bind(4, json_text(trial.prompt))
          .bind(5, json_text(trial.info))
          .bind(6, or_now(trial.started_ms));
    });
  };
}

// A step and its model and tool calls land together or not at all (one savepoint).
Writer::Operation step_op(Step step) {
  return [step = std::move(step)](Writer::Statements& s) -> Result<std::int64_t> {
    auto row = insert(s, kInsertStep, [&](detail::Statement& st) {
      st.bind(1, step.trial).bind(2, step.index).bind(3, or_now(step.created_ms));
      st.bind(4, step.content).bind(5, step.reasoning_content).bind(6, step.observation);
    });
    if (!row) return row;
    for (const ModelCall& m : step.model_calls) {
      auto added = insert(s, kInsertModelCall, [&](detail::Statement& st) {
        st.bind(1, step.trial).bind(2, step.index).bind(3, m.attempt).bind(4, m.backend);
        st.bind(5, m.model).bind(6, m.prompt_tokens).bind(7, m.completion_tokens);
        st.bind(8, m.cached_tokens).bind(9, m.latency_ms).bind(10, m.cost_usd).bind(11, m.error);
      });
      if (!added) return added;
    }
    for (const ToolCall& t : step.tool_calls) {
      auto added = insert(s, kInsertToolCall, [&](detail::Statement& st) {
        st.bind(1, step.trial).bind(2, step.index).bind(3, t.index).bind(4, t.call_id);
        st.bind(5, t.name).bind(6, t.arguments).bind(7, t.result).bind(8, t.exit_code);
        st.bind(9, t.duration_ms).bind(10, t.truncated ? 1 : 0);
      });
      if (!added) return added;
    }
    return 0;
  };
}

Writer::Operation finish_trial_op(TrialId trial, TrialEnd end) {
  return [trial, end = std::move(end)](Writer::Statements& s) -> Result<std::int64_t> {
    auto done = insert(s, kFinishTrial, [&](detail::Statement& st) {
      st.bind(1, trial).bind(2, end.exit_status).bind(3, end.resolved).bind(4, end.failure_mode);
      st.bind(5, json_text(end.info)).bind(6, or_now(end.finished_ms));
    });
    if (!done) return done;
    return changed_one(s.db(), "trial", trial);
  };
}

// Merges `patch` into the metadata (a task's) or the info (a trial's) of the row `id`.
Writer::Operation annotate_op(const char* sql, const char* what, std::int64_t id, Json patch) {
  return [sql, what, id, patch = std::move(patch)](Writer::Statements& s) -> Result<std::int64_t> {
    auto done =
        insert(s, sql, [&](detail::Statement& st) { st.bind(1, id).bind(2, json_text(patch)); });
    if (!done) return done;
    return changed_one(s.db(), what, id);
  };
}

Writer::Operation annotate_trial_op(TrialId trial, Json info) {
  return annotate_op(kAnnotateTrial, "trial", trial, std::move(info));
}

Writer::Operation finish_run_op(RunId run) {
  return [run](Writer::Statements& s) -> Result<std::int64_t> {
    auto done =
        insert(s, kFinishRun, [&](detail::Statement& st) { st.bind(1, run).bind(2, now_ms()); });
    if (!done) return done;
    return changed_one(s.db(), "run", run);
  };
}

Writer::Operation event_op(SandboxEvent event) {
  return [event = std::move(event)](Writer::Statements& s) {
    return insert(s, kInsertEvent, [&](detail::Statement& st) {
      st.bind(1, event.trial).bind(2, or_now(event.at_ms)).bind(3, event.kind);
      st.bind(4, json_text(event.detail));
    });
  };
}

Writer::Operation artifact_op(Artifact artifact) {
  return [artifact = std::move(artifact)](Writer::Statements& s) {
    return insert(s, kPutArtifact, [&](detail::Statement& st) {
      st.bind(1, artifact.trial).bind(2, artifact.name).bind(3, artifact.content);
      st.bind(4, now_ms());
    });
  };
}

Result<void> as_void(const Result<std::int64_t>& r) {
  if (!r) return tl::unexpected(r.error());
  return {};
}

// Suspends the calling coroutine until the writer has committed `operation`; resumes it on its
// own executor (never on the writer thread).
boost::asio::awaitable<Result<std::int64_t>> committed(Writer& writer,
                                                       Writer::Operation operation) {
  auto initiate = [&writer, &operation](auto handler) {
    using Handler = decltype(handler);
    auto shared = std::make_shared<Handler>(std::move(handler));
    writer.submit(std::move(operation), [shared](Result<std::int64_t> result) {
      auto executor = boost::asio::get_associated_executor(*shared);
      boost::asio::post(executor, [shared, result = std::move(result)]() mutable {
        (*shared)(std::move(result));
      });
    });
  };
  co_return co_await boost::asio::async_initiate<decltype(boost::asio::use_awaitable),
                                                 void(Result<std::int64_t>)>(
      initiate, boost::asio::use_awaitable);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const std::filesystem::path& file, Options options) {
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec)
    return tl::unexpected(
        Error{"cannot create " + file.parent_path().string() + ": " + ec.message()});
  auto db = Connection::open(file.string(), false);
  if (!db) return tl::unexpected(db.error());
  // WAL: readers never block the writer. synchronous=NORMAL in WAL mode loses nothing committed
  // when the process dies (the OS holds the log); FULL also survives power loss.
  // A 64 MiB page cache and memory-mapped reads: the writer rewrites the same B-tree pages batch
  // after batch, and checkpoints read back what the log holds; both then skip a copy per page.
  const std::string pragmas = std::string("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; ") +
                              "PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824; " +
                              "PRAGMA synchronous = " + (options.sync_to_disk ? "FULL" : "NORMAL");
  if (auto set = db->exec(pragmas); !set)
    return tl::unexpected(
        Error{file.string() + " is not a usable database: " + set.error().message});
  auto version = detail::migrate(*db);
  if (!version) return tl::unexpected(Error{file.string() + ": " + version.error().message});
  auto checkpoints = Connection::open(file.string(), false);
  if (!checkpoints) return tl::unexpected(checkpoints.error());
  auto impl = std::make_unique<Impl>();
  impl->path = file;
  impl->version = *version;
  impl->writer =
      std::make_unique<Writer>(std::move(*db), std::move(*checkpoints), options.max_batch);
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

const std::filesystem::path& Store::path() const {
  return impl_->path;
}
int Store::schema_version() const {
  return impl_->version;
}

Result<RunId> Store::create_run(const Run& run) {
  return impl_->writer->submit_and_wait(run_op(run));
}
Result<TaskId> Store::add_task(const Task& task) {
  return impl_->writer->submit_and_wait(task_op(task));
}
Result<TrialId> Store::start_trial(const Trial& trial) {
  return impl_->writer->submit_and_wait(trial_op(trial));
}
Result<void> Store::append_step(const Step& step) {
  return as_void(impl_->writer->submit_and_wait(step_op(step)));
}
Result<void> Store::finish_trial(TrialId trial, const TrialEnd& end) {
  return as_void(impl_->writer->submit_and_wait(finish_trial_op(trial, end)));
}
Result<void> Store::annotate_task(TaskId task, const Json& metadata) {
  return as_void(
      impl_->writer->submit_and_wait(annotate_op(kAnnotateTask, "task", task, metadata)));
}
Result<void> Store::annotate_trial(TrialId trial, const Json& info) {
  return as_void(impl_->writer->submit_and_wait(annotate_trial_op(trial, info)));
}
Result<void> Store::finish_run(RunId run) {
  return as_void(impl_->writer->submit_and_wait(finish_run_op(run)));
}
Result<void> Store::add_event(const SandboxEvent& event) {
  return as_void(impl_->writer->submit_and_wait(event_op(event)));
}
Result<void> Store::put_artifact(const Artifact& artifact) {
  return as_void(impl_->writer->submit_and_wait(artifact_op(artifact)));
}

// Operations are named before the co_await: GCC 12 mishandles temporaries inside co_await
// expressions.
boost::asio::awaitable<Result<TrialId>> Store::async_start_trial(Trial trial) {
  Writer::Operation op = trial_op(trial);
  co_return co_await committed(*impl_->writer, std::move(op));
}
boost::asio::awaitable<Result<void>> Store::async_append_step(Step step) {
  Writer::Operation op = step_op(std::move(step));
  co_return as_void(co_await committed(*impl_->writer, std::move(op)));
}
boost::asio::awaitable<Result<void>> Store::async_finish_trial(TrialId trial, TrialEnd end) {
  Writer::Operation op = finish_trial_op(trial, std::move(end));
  co_return as_void(co_await committed(*impl_->writer, std::move(op)));
}
boost::asio::awaitable<Result<void>> Store::async_annotate_trial(TrialId trial, Json info) {
  Writer::Operation op = annotate_trial_op(trial, std::move(info));
  co_return as_void(co_await committed(*impl_->writer, std::move(op)));
}
boost::asio::awaitable<Result<void>> Store::async_add_event(SandboxEvent event) {
  Writer::Operation op = event_op(std::move(event));
  co_return as_void(co_await committed(*impl_->writer, std::move(op)));
}
boost::asio::awaitable<Result<void>> Store::async_put_artifact(Artifact artifact) {
  Writer::Operation op = artifact_op(std::move(artifact));
  co_return as_void(co_await committed(*impl_->writer, std::move(op)));
}

}  // namespace warren::storage
