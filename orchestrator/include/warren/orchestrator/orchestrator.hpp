// warren/orchestrator: agent loops over model backends, tools in sandbox sessions, limits,
// retries and context, recorded in storage/.
//
// An agent loop is a C++20 coroutine on Boost.Asio: one thread runs thousands. Per step it builds
// the request, gets the model's answer (streamed through the DSML parser or read from the
// backend's structured deltas), runs the tool calls in the sandbox (parallel calls at once,
// results in call order), persists the step, and goes on until the model submits or a limit ends
// the trial. With GCC 12, name the arguments of a co_await'ed call rather than passing braced
// temporaries (see sandbox.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "warren/inference/model.hpp"
#include "warren/sandbox/sandbox.hpp"
#include "warren/storage/storage.hpp"
#include "warren/toolcall/toolcall.hpp"

namespace warren::orchestrator {

using Json = nlohmann::ordered_json;

struct Error {
  std::string message;  // one line a user can act on
};

template <class T>
using Result = tl::expected<T, Error>;

enum class Thinking { Off, High, Max };
Result<Thinking> parse_thinking(const std::string& text);  // "off", "high", "max"
std::string to_string(Thinking thinking);

// ---------------------------------------------------------------------------------------------
// Configuration: models, prices, tools (configs/*.json; the defaults are compiled in)
// ---------------------------------------------------------------------------------------------

// Which API a model is reached through (or none: completions replayed from a file, or the
// embedded engine in this process).
enum class BackendKind { OpenAi, Anthropic, Scripted, Embedded };
std::string to_string(BackendKind kind);  // "openai", "anthropic", "scripted", "embedded"
std::optional<BackendKind> backend_kind(const std::string& name);

struct ModelConfig {
  std::string name;  // the name warren knows it by (configs/models.json)
  BackendKind backend = BackendKind::OpenAi;
  std::string base_url;
  std::string model;        // the name the API knows it by
  std::string api_key_env;  // the environment variable holding the key; empty: none needed
  std::int64_t context_window = 1048576;
  std::int64_t max_output_tokens = 32768;
  std::string script;   // scripted: the file of completions
  std::string weights;  // embedded: the checkpoint folder (config.json, shards, tokenizer.json)
  // PEM file of the CA certificates to trust instead of the system's (a self-hosted server with
  // a private CA). The server's certificate and host name are always verified.
  std::string ca_file;
  double connect_timeout_s = 10;
  double idle_timeout_s = 300;  // no byte of the answer for this long: a timeout (retried)
};

struct Price {
  double input = 0;  // USD per 1M tokens
  double input_cache_hit = 0;
  double output = 0;
};

struct Config {
  Json models;  // {name: {backend, base_url, model, api_key_env, context_window, ...}}
  std::string default_model;
  Json prices;  // {name: {input, input_cache_hit, output}}
  Json tools;   // OpenAI tool objects offered to the model
  std::string system_prompt;

  // The compiled-in defaults, with `file` (a JSON object with any of "models", "default",
  // "prices", "tools", "system_prompt") laid over them when given.
  static Result<Config> load(const std::string& file = "");
  Result<ModelConfig> model(const std::string& name) const;
  // Unknown models cost nothing (a local model, a new name): nullopt, and the caller warns once.
  std::optional<Price> price(const std::string& model) const;
};

// USD for one call: cache-hit input tokens at their own price, the rest of the input and the
// output at theirs.
double cost_usd(const Price& price, std::int64_t prompt_tokens, std::int64_t cached_tokens,
                std::int64_t completion_tokens);

// ---------------------------------------------------------------------------------------------
// Model backends
// ---------------------------------------------------------------------------------------------

struct ModelRequest {
  std::vector<toolcall::Message> messages;
  std::vector<Json> tools;  // function objects {name, description, parameters}
  Thinking thinking = Thinking::High;
  std::int64_t max_output_tokens = 32768;
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t cached_tokens = 0;
};

struct ModelReply {
  std::string content;
  std::string reasoning_content;
  std::vector<toolcall::ParsedToolCall> tool_calls;  // a call's `errors` say what was wrong
  std::string finish_reason;
  Usage usage;
  std::vector<std::string> warnings;  // recoveries the parser made
};

enum class FailureKind {
  RateLimited,  // 429
  Server,       // 5xx
  Timeout,      // no answer, or no data for too long
  Dropped,      // the connection or stream ended early
  Network,      // could not connect
  BadRequest,   // 400, 422
  Auth,         // 401, 403
  NotFound,     // 404
  Protocol,     // an answer warren cannot read; a script that ran out
};

struct ModelFailure {
  FailureKind kind = FailureKind::Server;
  int http_status = 0;
  std::optional<std::chrono::milliseconds> retry_after;
  std::string message;  // the server's message where there is one
  bool retryable() const;
};

using ModelResult = tl::expected<ModelReply, ModelFailure>;

class ModelBackend {
 public:
  virtual ~ModelBackend() = default;
  virtual BackendKind backend() const = 0;
  virtual std::string model() const = 0;
  virtual boost::asio::awaitable<ModelResult> complete(ModelRequest request) = 0;
  // A resumed trial has used its first `answers` answers already: a backend that replays a
  // recording moves past them; a live model has nothing to do.
  virtual void skip_answers(int answers) { (void)answers; }
  // Whether the backend's server can be reached at all (a connection, no request), so that a
  // wrong base URL is one clear error before any work starts.
  virtual boost::asio::awaitable<Result<void>> check_reachable() { co_return Result<void>{}; }
};

// Replays raw completions (DSML text as the model writes it, each ended by
// <｜end▁of▁sentence｜>, or a JSON array of strings) one per request, fed through the streaming
// parser in small pieces as an engine would stream them. Usage counts are estimates: 4 bytes a
// token, of the encoded prompt and of the completion.
Result<std::unique_ptr<ModelBackend>> make_scripted_backend(const std::string& file,
                                                            std::size_t chunk_bytes = 7);
std::unique_ptr<ModelBackend> make_scripted_backend_from(std::vector<std::string> completions,
                                                         std::size_t chunk_bytes = 7);

// The embedded engine (inference/) as a backend: each request is encoded by the V4 prompt
// encoder, tokenized, generated in this process by the engine's Batcher (which gathers the
// requests of every backend sharing it into the same decode steps) while a thread of the
// backend's own waits for it (the event loop goes on meanwhile), and streamed through the DSML
// parser as a hosted answer is. Usage counts are the tokens themselves. `logits_processor`: see
// inference::GenerateOptions.
struct EmbeddedOptions {
  inference::SamplingOptions sampling;  // greedy unless a temperature is set
  inference::LogitsProcessor logits_processor;
};
Result<std::unique_ptr<ModelBackend>> make_embedded_backend(
    const ModelConfig& config, EmbeddedOptions options = {},
    std::shared_ptr<inference::Batcher> engine = nullptr);
// The engine of the embedded model `config` names, opened (its tokenizer required), behind its
// Batcher: backends made with it share its weights and its decode steps, as an evaluation's
// concurrent trials do.
Result<std::shared_ptr<inference::Batcher>> open_embedded_engine(const ModelConfig& config);

// The backend a ModelConfig names. The API key is read from its environment variable here, and
// is never stored or logged.
Result<std::unique_ptr<ModelBackend>> make_backend(const ModelConfig& config,
                                                   boost::asio::any_io_executor executor);

// ---------------------------------------------------------------------------------------------
// Agent loops
// ---------------------------------------------------------------------------------------------

struct Limits {
  int max_steps = 100;
  double max_cost_usd = 0;                // 0: none
  std::chrono::seconds timeout{0};        // wall clock for the trial; 0: none
  std::int64_t max_tokens = 0;            // prompt + completion over the trial; 0: none
  int max_format_errors = 3;              // consecutive answers with no usable tool call
  std::size_t observation_bytes = 16384;  // a tool output longer than this keeps head and tail
};

struct RetryPolicy {
  int max_attempts = 6;  // per step, first try included
  std::chrono::milliseconds base_delay{1000};
  std::chrono::milliseconds max_delay{60000};
  // The same failure (rate limits aside) this many times in a row ends the retries early.
  int same_failure_limit = 3;
};

struct AgentSettings {
  Thinking thinking = Thinking::High;
  Limits limits;
  RetryPolicy retry;
  std::int64_t context_window = 1048576;
  std::int64_t max_output_tokens = 32768;
  std::chrono::seconds command_timeout{120};  // the bash tool's default
};

// What the loop tells whoever watches (the terminal, an eval's progress bar).
struct StepReport {
  storage::TrialId trial = 0;
  int step = 0;
  std::vector<std::string> tools;  // the calls made, by name
  Usage usage;                     // this step's model calls together
  double cost_usd = 0;             // this step's
  double total_cost_usd = 0;       // the trial's so far
  std::int64_t total_tokens = 0;
  std::string note;     // a retry, a format error, an elision
  double step_ms = 0;   // the whole step, from its start until it was durable
  double model_ms = 0;  // of it, waiting for the model (retries included)
  double tools_ms = 0;  // of it, running the tools (the longest resource, when they overlap)
};

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void on_step(const StepReport&) {}
  virtual void on_warning(const std::string&) {}
  virtual void on_note(const std::string&) {}  // what a run is doing before its first step
};

// What one tool call gave back.
struct ToolResult {
  std::string output;  // what the model is shown
  std::optional<int> exit_code;
  bool truncated = false;
  bool submitted = false;
  bool environment_failed = false;  // the environment is gone: the trial cannot go on
  double duration_ms = 0;
};

using Deadline = std::chrono::steady_clock::time_point;

// Runs one step's tool calls and returns their results in call order. No call runs past
// `deadline` (the trial's time limit): it is interrupted there.
class ToolRunner {
 public:
  virtual ~ToolRunner() = default;
  virtual boost::asio::awaitable<std::vector<ToolResult>> run(
      const std::vector<toolcall::ParsedToolCall>& calls, Deadline deadline) = 0;
};

// The standard tools (configs/tools/default.json) on a sandbox session: bash (the session's
// shell), str_replace_editor (files through the session's in-root file access), search, submit.
// Calls on different resources run at once (the editor works on files while the shell runs a
// command); calls on the shell run one after another in the order the model gave.
std::unique_ptr<ToolRunner> make_sandbox_tools(sandbox::Session& session,
                                               const AgentSettings& settings);

// How an agent loop ended. Stored and printed by its name (to_string): submitted, exit_steps,
// exit_cost (dollars or tokens), exit_time, exit_context, exit_format, exit_api,
// exit_environment, cancelled.
enum class ExitStatus {
  Submitted,
  ExitSteps,
  ExitCost,
  ExitTime,
  ExitContext,
  ExitFormat,
  ExitApi,
  ExitEnvironment,
  Cancelled,
};
std::string to_string(ExitStatus status);

struct AgentOutcome {
  ExitStatus exit_status = ExitStatus::ExitEnvironment;  // an agent that never ran: its setup
  std::string message;                                   // why, in one line, when it did not submit
  int steps = 0;
  Usage usage;
  double cost_usd = 0;
};

// Everything one agent loop uses; none of it is owned.
struct AgentContext {
  ModelBackend& backend;
  ToolRunner& tools;
  storage::Store& store;
  const Config& config;
  AgentSettings settings;
  Observer* observer = nullptr;
  const bool* cancelled = nullptr;  // checked between steps
};

// Runs (or, when the trial has steps already, resumes) the loop of trial `trial`, whose prompt
// (system and user messages) is stored with it. Every step is durable before the next begins.
boost::asio::awaitable<AgentOutcome> run_agent(AgentContext& context, storage::TrialId trial);

// The first messages of a trial: the system prompt with the tools and the task.
Json initial_prompt(const Config& config, const std::string& task);

// ---------------------------------------------------------------------------------------------
// One task on one repository (`warren run`)
// ---------------------------------------------------------------------------------------------

// What of the repository a run's workspace starts with: the working tree as git sees it
// (tracked files and untracked ones not ignored, with .git; everything when the repository is
// not a git work tree), or everything. Warren's own state is never copied.
enum class RepoCopy { Git, All };
const char* to_string(RepoCopy copy);
Result<RepoCopy> parse_repo_copy(const std::string& text);

// Where the runs of the database `db` make their workspaces: workspaces/<its file name> beside
// it, so that two databases in one folder never share one.
std::string workspaces_folder(const std::string& db);

struct TaskRunOptions {
  std::string repo;  // host directory, copied; never changed
  std::string task;
  ModelConfig model;
  AgentSettings settings;
  // Limits for the sandbox (the workspace is set by the run). As root the workspace is a bounded
  // filesystem holding the copy and limits.disk_bytes more (sandbox::WorkspaceLimits).
  sandbox::Policy policy;
  std::string workspaces;  // where trial workspaces are made (workspaces_folder)
  RepoCopy copy = RepoCopy::Git;
  std::vector<std::string> exclude;      // host paths never copied: the database, the workspaces
  bool keep_workspace = false;           // keep it once the run has finished (its patch is stored)
  std::optional<storage::RunId> resume;  // continue this run instead of starting one
  Json extra_settings = Json::object();  // stored with the run's settings (a script's path)
  const bool* cancelled = nullptr;       // set it to end the run after the step in flight
};

struct TaskRunResult {
  storage::RunId run = 0;
  storage::TrialId trial = 0;
  AgentOutcome outcome;
  std::string patch;      // the workspace's changes against the repository, as a git diff
  std::string workspace;  // empty once removed
};

// The run's settings as stored (repo, task, model, thinking, limits): what `--resume` reads back.
Json settings_to_json(const TaskRunOptions& options);

// Runs the agent on a copy of the repository until it ends, then records the patch. With
// `resume`, continues that run's unfinished trial in its workspace from its last durable step.
boost::asio::awaitable<Result<TaskRunResult>> run_task(TaskRunOptions options,
                                                       ModelBackend& backend,
                                                       sandbox::Runtime& runtime,
                                                       storage::Store& store, const Config& config,
                                                       Observer* observer);

// ---------------------------------------------------------------------------------------------
// Helpers (evaluation uses them too)
// ---------------------------------------------------------------------------------------------

// Starts every task on the caller's executor and resumes the caller once the last has ended: the
// one way the orchestrator overlaps work (a step's tool calls on different resources, an eval's
// workers). Exceptions in the tasks are dropped: tasks report through their own results.
boost::asio::awaitable<void> run_all(std::vector<boost::asio::awaitable<void>> tasks);

// `text` as one word for sh: single quotes, with each ' written as '\''.
std::string shell_quote(const std::string& text);

// The whole file at `path`, a config or script the operator named; `what` names it in errors.
Result<std::string> read_text_file(const std::string& path, const std::string& what);

}  // namespace warren::orchestrator
