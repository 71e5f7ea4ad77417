// The agent loop's own cost: overhead per step (scripted backend, a trivial tool; model and tool
// time excluded), and 10,000 concurrent sessions in one process with their memory per session.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <utility>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "warren/orchestrator/orchestrator.hpp"

namespace fs = std::filesystem;
using namespace warren;
using namespace warren::orchestrator;

namespace {

// Tools that take `sleep` (0: no time at all) and say "ok"; submit submits.
class SleepTools final : public ToolRunner {
 public:
  explicit SleepTools(std::chrono::milliseconds sleep, int* sleeping = nullptr)
      : sleep_(sleep), sleeping_(sleeping) {}
  boost::asio::awaitable<std::vector<ToolResult>> run(
      const std::vector<toolcall::ParsedToolCall>& calls, Deadline) override {
    if (sleep_.count() > 0) {
      if (sleeping_) ++*sleeping_;
      boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, sleep_);
      co_await timer.async_wait(boost::asio::use_awaitable);
      if (sleeping_) --*sleeping_;
    }
    std::vector<ToolResult> results;
    for (const auto& call : calls)
      results.push_back(
          ToolResult{.output = "ok\n", .exit_code = 0, .submitted = call.name == "submit"});
    co_return results;
  }

 private:
  std::chrono::milliseconds sleep_;
  int* sleeping_;
};

std::string step_completion(int i) {
  return "Step " + std::to_string(i) +
         ".</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"bash\">\n<｜DSML｜parameter "
         "name=\"command\" "
         "string=\"true\">true</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>";
}

std::string submit_completion() {
  return "Done.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke "
         "name=\"submit\">\n</｜DSML｜invoke>\n</"
         "｜DSML｜tool_calls>";
}

struct Fixture {
  fs::path dir = fs::temp_directory_path() / ("warren-orch-bench-" + std::to_string(getpid()));
  std::unique_ptr<storage::Store> store;
  Config config = *Config::load();
  storage::RunId run = 0;
  storage::TaskId task = 0;
  Fixture() {
    fs::remove_all(dir);
    store = std::move(*storage::Store::open(dir / "warren.db"));
    run = *store->create_run(storage::Run{.kind = "eval", .name = "bench"});
    task = *store->add_task(storage::Task{.run = run, .name = "t", .instruction = "i"});
  }
  ~Fixture() {
    store.reset();
    fs::remove_all(dir);
  }
  storage::TrialId trial(int attempt) {
    storage::Trial t{.run = run, .task = task, .attempt = attempt};
    t.prompt = initial_prompt(config, "Make the tests pass.");
    return *store->start_trial(t);
  }
};

class Overheads final : public Observer {
 public:
  void on_step(const StepReport& r) override {
    us.push_back((r.step_ms - r.model_ms - r.tools_ms) * 1000);
  }
  std::vector<double> us;
};

boost::asio::awaitable<void> one_session(AgentContext& context, storage::TrialId trial,
                                         int& submitted) {
  AgentOutcome outcome = co_await run_agent(context, trial);
  if (outcome.exit_status == ExitStatus::Submitted) ++submitted;
}

// One session of 200 steps; the counters are the loop's own time per step (building the request,
// the DSML parse's bookkeeping, recording the step durably in SQLite, the tally).
void BM_StepOverhead(benchmark::State& state) {
  Fixture f;
  Overheads overheads;
  int attempt = 0, submitted = 0;
  for (auto _ : state) {
    std::vector<std::string> script;
    for (int i = 0; i < 200; ++i) script.push_back(step_completion(i));
    script.push_back(submit_completion());
    auto backend = make_scripted_backend_from(std::move(script));
    SleepTools tools(std::chrono::milliseconds(0));
    AgentSettings settings;
    settings.limits.max_steps = 1000;
    AgentContext context{*backend, tools, *f.store, f.config, settings, &overheads};
    boost::asio::io_context io;
    boost::asio::co_spawn(io, one_session(context, f.trial(attempt++), submitted),
                          boost::asio::detached);
    io.run();
  }
  if (submitted != attempt) state.SkipWithError("a session did not submit");
  std::sort(overheads.us.begin(), overheads.us.end());
  state.counters["overhead_p50_us"] = overheads.us[overheads.us.size() / 2];
  state.counters["overhead_p99_us"] = overheads.us[overheads.us.size() * 99 / 100];
  state.counters["steps"] = static_cast<double>(overheads.us.size());
}
BENCHMARK(BM_StepOverhead)->Unit(benchmark::kMillisecond)->Iterations(3);

long rss_kib() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// `sessions` loops at once on one thread, each: bash (a tool that sleeps 2 s), bash, submit.
// Memory is sampled while every session waits in its first tool call.
void BM_ConcurrentSessions(benchmark::State& state) {
  const int sessions = static_cast<int>(state.range(0));
  for (auto _ : state) {
    Fixture f;
    AgentSettings settings;
    int sleeping = 0, submitted = 0;
    std::vector<std::unique_ptr<ModelBackend>> backends;
    std::vector<std::unique_ptr<SleepTools>> tools;
    std::vector<std::unique_ptr<AgentContext>> contexts;
    std::vector<storage::TrialId> trials;
    for (int s = 0; s < sessions; ++s) trials.push_back(f.trial(s));
    const long before = rss_kib();
    boost::asio::io_context io;
    for (int s = 0; s < sessions; ++s) {
      backends.push_back(make_scripted_backend_from(
          {step_completion(0), step_completion(1), submit_completion()}));
      tools.push_back(std::make_unique<SleepTools>(std::chrono::milliseconds(2000), &sleeping));
      contexts.push_back(std::make_unique<AgentContext>(
          AgentContext{*backends.back(), *tools.back(), *f.store, f.config, settings}));
      boost::asio::co_spawn(
          io, one_session(*contexts.back(), trials[static_cast<std::size_t>(s)], submitted),
          boost::asio::detached);
    }
    long idle = 0;
    const auto start = std::chrono::steady_clock::now();
    while (io.run_one()) {
      if (sleeping == sessions && idle == 0) idle = rss_kib();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (submitted != sessions) state.SkipWithError("a session did not submit");
    state.counters["KiB_per_idle_session"] = static_cast<double>(idle - before) / sessions;
    state.counters["wall_s"] = seconds;
    state.counters["sessions"] = sessions;
  }
}
BENCHMARK(BM_ConcurrentSessions)->Arg(10000)->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
