// `warren eval SUITE` and `warren report RUN_ID`.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "io.hpp"
#include "run_commands.hpp"
#include "warren/eval/eval.hpp"

namespace warren::cli {

namespace {

namespace orch = warren::orchestrator;
namespace ev = warren::eval;
using Json = nlohmann::ordered_json;

struct EvalFlags {
  std::string suite, agent = "oracle", model, filter, shard = "0/1", rootfs, config;
  std::string db = ".warren/warren.db", html, predictions, images, network = "none";
  std::vector<std::string> merge_sources;
  int concurrency = 0, attempts = 1;
  double timeout_multiplier = 1.0;
  std::int64_t resume = 0;
  bool json = false, keep_workspaces = false, stand_ins = false;
};

int fail(const std::string& command, const std::string& message) {
  std::cerr << "warren " << command << ": " << message << "\n";
  return 2;
}

// One line that redraws itself on a terminal; a line per finished trial otherwise.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), terminal_(isatty(STDERR_FILENO)) {}
  void update(const ev::EvalProgress& p, const ev::TrialReport* finished) {
    if (quiet_) return;
    char line[200];
    const int width = 30;
    const int filled = p.total ? p.done * width / p.total : width;
    std::snprintf(line, sizeof line,
                  "[%s%s] %d/%d done, %d running, %d resolved, %d failed, %d not run, ETA %.0fs",
                  std::string(static_cast<std::size_t>(filled), '#').c_str(),
                  std::string(static_cast<std::size_t>(width - filled), '.').c_str(), p.done,
                  p.total, p.running, p.resolved, p.failed, p.not_run, p.eta_s);
    if (terminal_) {
      std::cerr << "\r" << line << "\033[K" << std::flush;
      if (p.done == p.total && !p.running) std::cerr << "\n";
    } else if (finished) {
      std::cerr << line << "  " << printable(finished->task) << " #" << finished->attempt << ": "
                << (finished->resolved ? "resolved" : ev::to_string(finished->failure_mode))
                << "\n";
    }
  }

 private:
  bool quiet_, terminal_;
};

// "I/N" into its numbers.
bool parse_shard(const std::string& text, int& index, int& count) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) return false;
  try {
    index = std::stoi(text.substr(0, slash));
    count = std::stoi(text.substr(slash + 1));
  } catch (...) {
    return false;
  }
  return count >= 1 && index >= 0 && index < count;
}

void print_report(const Json& r) {
  std::printf("run %lld: %s (%s)\n", static_cast<long long>(r["run"].get<std::int64_t>()),
              printable(r["suite"].get<std::string>()).c_str(),
              r["settings"].value("agent", "").c_str());
  std::printf("%-36s %-18s %-9s %s\n", "task", "category", "status", "failure / message");
  for (const Json& t : r["tasks"]) {
    std::string status = t["resolved"].get<bool>() ? "resolved" : "failed";
    std::string why;
    if (!t["attempts"].empty() && !t["resolved"].get<bool>()) {
      const Json& last = t["attempts"].back();
      why = last["failure_mode"].get<std::string>();
      // A trial that never ran shows its whole reason (the instruction that blocked it); one that
      // ran and failed, the start of its message.
      const bool never_ran = why == ev::to_string(ev::FailureMode::EnvironmentError);
      if (never_ran) status = "not run";
      const std::string message = last["message"].get<std::string>();
      if (!message.empty()) why += ": " + (never_ran ? message : message.substr(0, 80));
    }
    if (t["attempts"].empty()) status = "unfinished";  // no attempt finished (an interrupted run)
    std::printf("%-36s %-18s %-9s %s\n", printable(t["name"].get<std::string>()).c_str(),
                printable(t["category"].get<std::string>()).c_str(), status.c_str(),
                printable(why).c_str());
  }
  std::printf("resolved %d of %d tasks (%.1f%%)", r["resolved"].get<int>(),
              r["tasks_run"].get<int>(), 100 * r["resolved_rate"].get<double>());
  if (const int never_ran = r["never_ran"].get<int>(); never_ran > 0)
    std::printf(", %d trial(s) not run", never_ran);
  for (const auto& [k, v] : r["pass_at_k"].items())
    std::printf(", %s %.3f", k.c_str(), v.get<double>());
  std::printf("; trial time p50 %.1fs; cost $%.4f\n", r["duration_s"]["p50"].get<double>(),
              r["usage"].value("cost_usd", 0.0));
}

// The report on stdout: JSON with --json, else the summary.
void show_report(const EvalFlags& f, const Json& report) {
  if (f.json)
    write_stdout(json_text(report, 2) + "\n");
  else
    print_report(report);
}

// The files a report can also go to: --html and --predictions. False (with the message printed)
// when one cannot be written.
bool write_outputs(const std::string& command, const EvalFlags& f, const storage::Store& store,
                   const Json& report) {
  if (!f.html.empty() && !(std::ofstream(f.html, std::ios::binary) << ev::report_html(report))) {
    fail(command, "cannot write " + f.html);
    return false;
  }
  if (!f.predictions.empty()) {
    auto predictions = ev::swe_predictions(store, report["run"].get<std::int64_t>());
    if (!predictions) {
      fail(command, predictions.error().message);
      return false;
    }
    if (!(std::ofstream(f.predictions, std::ios::binary) << json_text(*predictions, 2) << "\n")) {
      fail(command, "cannot write " + f.predictions);
      return false;
    }
  }
  return true;
}

// The exit status of an eval, for a CI job: 1 when trials never ran (their task or environment
// could not be set up) or, with the oracle, when a task is broken (its own solution fails it);
// 0 when every trial ran, whatever the agent made of it. Says why on stderr. Records the database
// could not take (a full disk) make it 1 too: the report, read from it, lacks them.
int eval_status(const Json& report, bool oracle, const std::vector<ev::TrialReport>& trials_run) {
  int record_errors = 0;
  std::string first_reason;
  for (const ev::TrialReport& t : trials_run)
    if (t.record_errors > 0) {
      if (record_errors == 0) first_reason = t.record_error;
      record_errors += t.record_errors;
    }
  if (record_errors > 0)
    std::cerr << "warren eval: " << record_errors
              << " record(s) could not be written to the database, so the report lacks them: "
              << printable(first_reason) << "\n";
  const int trials = report["trials"].get<int>();
  const int never_ran = report["never_ran"].get<int>();
  const std::size_t unresolved = report["unresolved"].size();
  if (never_ran > 0)
    std::cerr << "warren eval: " << never_ran << " of " << trials
              << " trial(s) never ran (environment_error: the task or its environment could not "
                 "be set up); "
              << trials - never_ran << " ran\n";
  if (oracle && unresolved > 0)
    std::cerr << "warren eval: the oracle could not solve " << unresolved
              << " task(s): the suite is broken there: " << json_text(report["unresolved"]) << "\n";
  return never_ran > 0 || (oracle && unresolved > 0) || record_errors > 0 ? 1 : 0;
}

int eval_command(const EvalFlags& f) {
  auto config = orch::Config::load(f.config);
  if (!config) return fail("eval", config.error().message);
  auto store = storage::Store::open(f.db);
  if (!store) return fail("eval", store.error().message);
  ev::EvalOptions o;
  EvalFlags s = f;
  if (f.resume) {  // what the run was started with
    auto run = (*store)->load_run(f.resume);
    if (!run) return fail("eval", run.error().message);
    if (run->kind != "eval")
      return fail("eval", "run " + std::to_string(f.resume) + " is not an eval");
    const Json& st = run->settings;
    s.suite = st.value("suite", "");
    s.agent = st.value("agent", "oracle");
    s.model = st.value("model", "");
    s.attempts = st.value("attempts", 1);
    s.filter = st.value("filter", "");
    s.shard = st.value("shard", "0/1");
    s.timeout_multiplier = st.value("timeout_multiplier", 1.0);
    s.rootfs = st.value("rootfs", "");
    s.network = st.value("network", "none");
    s.stand_ins = st.value("stand_ins", false);
    o.resume = f.resume;
  }
  if (s.suite.empty()) return fail("eval", "name a suite (a task directory or a folder of them)");
  o.suite = s.suite;
  o.attempts = s.attempts;
  o.filter = s.filter;
  o.concurrency = f.concurrency;
  if (!parse_shard(s.shard, o.shard, o.shards))
    return fail("eval", "--shard wants I/N with 0 <= I < N, not " + s.shard);
  const auto agent = ev::agent_kind(s.agent);  // a resumed run's is read from its database
  if (!agent) return fail("eval", "unknown agent \"" + s.agent + "\" (oracle, nop or model)");
  o.settings.agent = *agent;
  o.settings.timeout_multiplier = s.timeout_multiplier;
  o.settings.rootfs = s.rootfs;
  o.settings.stand_ins = s.stand_ins;
  o.settings.network =
      s.network == "outbound" ? warren::sandbox::Network::Outbound : warren::sandbox::Network::None;
  o.settings.images = f.images;
  o.log = [](const std::string& line) { std::cerr << "warren: " << printable(line) << "\n"; };
  o.settings.workspaces = orch::workspaces_folder(f.db);
  o.settings.keep_workspaces = f.keep_workspaces;
  if (s.agent == "model") {
    auto model = config->model(s.model);
    if (!model) return fail("eval", model.error().message);
    o.settings.model = *model;
    o.settings.agent_settings.context_window = model->context_window;
    o.settings.agent_settings.max_output_tokens = model->max_output_tokens;
  }
  o.settings.limits.memory_bytes = 2ULL << 30;
  o.settings.limits.disk_bytes = 2ULL << 30;

  boost::asio::io_context io;
  sandbox::Runtime runtime;
  Progress progress(f.json);
  std::optional<orch::Result<ev::EvalResult>> result;
  auto on_progress = [&progress](const ev::EvalProgress& p, const ev::TrialReport* r) {
    progress.update(p, r);
  };
  boost::asio::co_spawn(io, ev::run_eval(o, runtime, **store, *config, on_progress),
                        [&](std::exception_ptr e, orch::Result<ev::EvalResult> r) {
                          if (e) std::rethrow_exception(e);
                          result = std::move(r);
                        });
  io.run();
  if (!result || !*result)
    return fail("eval", result ? result->error().message : "the eval did not finish");
  auto report = ev::eval_report(**store, (*result)->run);
  if (!report) return fail("eval", report.error().message);
  if (!write_outputs("eval", f, **store, *report)) return 2;
  show_report(f, *report);
  return eval_status(*report, s.agent == "oracle", (*result)->trials);
}

int report_command(const EvalFlags& f) {
  auto store = storage::Store::open(f.db);
  if (!store) return fail("report", store.error().message);
  auto report = ev::eval_report(**store, f.resume);
  if (!report) return fail("report", report.error().message);
  if (!write_outputs("report", f, **store, *report)) return 2;
  show_report(f, *report);
  return 0;
}

int merge_command(const EvalFlags& f) {
  auto store = storage::Store::open(f.db);
  if (!store) return fail("eval merge", store.error().message);
  auto merged = ev::merge_databases(**store, f.merge_sources);
  if (!merged) return fail("eval merge", merged.error().message);
  auto report = ev::eval_report(**store, merged->front());
  if (!report) return fail("eval merge", report.error().message);
  show_report(f, *report);
  return 0;
}

}  // namespace

void add_eval_commands(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* eval = app.add_subcommand("eval", "run an agent over a suite of tasks and grade it");
  eval->add_option("SUITE", f->suite,
                   "a task directory (Terminal-Bench or Harbor) or a folder of them");
  eval->add_option("--agent", f->agent,
                   "oracle (the reference solutions), nop (does nothing) or model")
      ->check(CLI::IsMember({"oracle", "nop", "model"}));
  eval->add_option("--model", f->model, "with --agent model: a model named in configs/models.json");
  eval->add_option("--concurrency", f->concurrency,
                   "trials at once (default: what the machine can hold)")
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--attempts", f->attempts, "attempts per task, for pass@k")
      ->check(CLI::PositiveNumber);
  eval->add_option("--filter", f->filter, "only the tasks whose names match this glob");
  eval->add_option("--timeout-multiplier", f->timeout_multiplier, "scale every task's time limits")
      ->check(CLI::PositiveNumber);
  eval->add_option("--shard", f->shard,
                   "I/N: run the I-th of N deterministic slices (default 0/1)");
  eval->add_option("--rootfs", f->rootfs,
                   "one prepared root for every task whose Dockerfile needs a build, unbuilt");
  eval->add_option("--images", f->images,
                   "the image store that task images are built into and cached in (default: "
                   "$WARREN_IMAGES, else ~/.cache/warren/images)");
  eval->add_option("--network", f->network,
                   "none (default: trials are offline; the tests' network steps meet stand-ins) "
                   "or outbound (the agent and the tests of each task that allows it reach the "
                   "internet through a NAT of their own; the host's loopback stays unreachable)")
      ->check(CLI::IsMember({"none", "outbound"}));
  eval->add_flag("--stand-ins", f->stand_ins,
                 "with --network outbound: the tests' uv/pip steps still use the offline "
                 "stand-ins (a network that reaches a Debian mirror but not PyPI)");
  eval->add_option("--resume", f->resume, "continue eval run ID: skip its finished trials");
  eval->add_option("--config", f->config, "a JSON file over the built-in configs");
  eval->add_option("--db", f->db, "the database (default .warren/warren.db)");
  eval->add_option("--html", f->html, "also write the report as a self-contained HTML page");
  eval->add_option("--predictions", f->predictions,
                   "also write SWE-bench predictions ({instance_id: {model_patch, ...}})");
  eval->add_flag("--json", f->json, "print the report as JSON, no progress");
  eval->add_flag("--keep-workspaces", f->keep_workspaces,
                 "keep each trial's folder (its bounded filesystems stay mounted)");
  eval->callback([f, eval, &exit_code] {
    if (eval->got_subcommand("merge")) return;  // `eval merge` runs instead
    exit_code = eval_command(*f);
  });

  auto m = std::make_shared<EvalFlags>();
  CLI::App* merge = eval->add_subcommand("merge", "combine shard databases into one run (in --db)");
  merge->add_option("DB", m->merge_sources, "the shard databases")->required();
  merge->add_option("--db", m->db, "the database to merge into (default .warren/warren.db)");
  merge->add_flag("--json", m->json, "print the merged report as JSON");
  merge->callback([m, &exit_code] { exit_code = merge_command(*m); });

  auto r = std::make_shared<EvalFlags>();
  CLI::App* report = app.add_subcommand("report", "the report of an eval run");
  report->add_option("RUN_ID", r->resume, "the run")->required();
  report->add_option("--db", r->db, "the database (default .warren/warren.db)");
  report->add_flag("--json", r->json, "print JSON");
  report->add_option("--html", r->html, "write the report as a self-contained HTML page");
  report->add_option("--predictions", r->predictions, "write SWE-bench predictions");
  report->callback([r, &exit_code] { exit_code = report_command(*r); });
}

}  // namespace warren::cli
