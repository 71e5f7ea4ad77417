// The SQLite store: schema, round trips, the batching writer, coroutine writes, durability under
// SIGKILL, and the exports.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "warren/storage/storage.hpp"

namespace fs = std::filesystem;
using namespace warren::storage;

namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("warren-store-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path db() const { return dir_ / ".warren" / "warren.db"; }

  std::unique_ptr<Store> open() {
    auto store = Store::open(db());
    EXPECT_TRUE(store) << store.error().message;
    return std::move(*store);
  }

  // A run with one task and one trial: the ids.
  std::tuple<RunId, TaskId, TrialId> make_trial(Store& store) {
    const RunId run = *store.create_run(warren::storage::Run{.kind = "run", .name = "repo"});
    const TaskId task = *store.add_task(Task{.run = run, .name = "fix", .instruction = "fix it"});
    Trial trial{.run = run, .task = task, .attempt = 0};
    trial.prompt = Json::array(
        {{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", "fix it"}}});
    trial.info = {{"model", "deepseek-v4-flash"}};
    return {run, task, *store.start_trial(trial)};
  }

  // Runs one SQL query against the file directly, returning the first column of the first row.
  std::string sql(const std::string& query) const {
    sqlite3* handle = nullptr;
    sqlite3_open_v2(db().c_str(), &handle, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    std::string value = "<error>";
    if (sqlite3_prepare_v2(handle, query.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      value = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(handle);
    return value;
  }

  fs::path dir_;
};

Step make_step(TrialId trial, int index) {
  Step step{.trial = trial, .index = index};
  step.content = "step " + std::to_string(index);
  step.reasoning_content = "thinking about " + std::to_string(index);
  step.model_calls.push_back(ModelCall{.attempt = 0,
                                       .backend = "scripted",
                                       .model = "m",
                                       .prompt_tokens = 1000,
                                       .completion_tokens = 50,
                                       .cached_tokens = 800,
                                       .latency_ms = 12.5,
                                       .cost_usd = 0.001});
  step.tool_calls.push_back(ToolCall{.index = 0,
                                     .call_id = "call_" + std::to_string(index),
                                     .name = "bash",
                                     .arguments = R"({"command":"ls"})",
                                     .result = "a\nb\n",
                                     .exit_code = 0,
                                     .duration_ms = 3});
  return step;
}

TEST_F(StoreTest, OpenMakesTheFileInWalModeAtTheLatestSchema) {
  auto store = open();
  EXPECT_TRUE(fs::exists(db()));
  EXPECT_EQ(sql("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(sql("PRAGMA user_version"), std::to_string(store->schema_version()));
  EXPECT_GE(store->schema_version(), 1);
  EXPECT_EQ(sql("SELECT count(*) FROM sqlite_master WHERE type = 'table'"), "8");
}

TEST_F(StoreTest, ANewerSchemaIsRefusedWithAClearMessage) {
  { auto store = open(); }
  {
    sqlite3* handle = nullptr;
    sqlite3_open(db().c_str(), &handle);
    sqlite3_exec(handle, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
    sqlite3_close(handle);
  }
  auto again = Store::open(db());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("newer warren (schema version 99"), std::string::npos)
      << again.error().message;
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsOneClearError) {
  fs::create_directories(db().parent_path());
  std::FILE* f = std::fopen(db().c_str(), "w");
  std::fputs("this is not sqlite, just text that is long enough to be read as a header......", f);
  std::fclose(f);
  auto store = Store::open(db());
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message.find("is not a usable database"), std::string::npos)
      << store.error().message;
}

TEST_F(StoreTest, StepsRoundTripWithTheirCalls) {
  auto store = open();
  auto [run, task, trial] = make_trial(*store);
  Step step = make_step(trial, 0);
  step.tool_calls.push_back(ToolCall{.index = 1,
                                     .call_id = "call_x",
                                     .name = "search",
                                     .arguments = "{}",
                                     .result = std::string("bytes \0 inside", 14),
                                     .truncated = true});
  step.model_calls.insert(
      step.model_calls.begin(),
      ModelCall{.attempt = 0, .backend = "openai", .model = "m", .error = "429"});
  step.model_calls[1].attempt = 1;
  step.observation = "format error: no tool call";
  ASSERT_TRUE(store->append_step(step));
  ASSERT_TRUE(store->append_step(make_step(trial, 1)));

  auto steps = store->load_steps(trial);
  ASSERT_TRUE(steps) << steps.error().message;
  ASSERT_EQ(steps->size(), 2u);
  const Step& got = (*steps)[0];
  EXPECT_EQ(got.content, "step 0");
  EXPECT_EQ(got.reasoning_content, "thinking about 0");
  EXPECT_EQ(got.observation, "format error: no tool call");
  ASSERT_EQ(got.model_calls.size(), 2u);
  EXPECT_EQ(got.model_calls[0].error, "429");
  EXPECT_EQ(got.model_calls[1].cached_tokens, 800);
  EXPECT_DOUBLE_EQ(got.model_calls[1].latency_ms, 12.5);
  ASSERT_EQ(got.tool_calls.size(), 2u);
  EXPECT_EQ(got.tool_calls[0].exit_code, 0);
  EXPECT_EQ(got.tool_calls[1].exit_code, std::nullopt);
  EXPECT_EQ(got.tool_calls[1].result, std::string("bytes \0 inside", 14));
  EXPECT_TRUE(got.tool_calls[1].truncated);
  EXPECT_EQ((*steps)[1].tool_calls[0].call_id, "call_1");

  ASSERT_TRUE(store->annotate_trial(trial, {{"workspace", "/w"}}));
  auto loaded = store->load_trial(trial);
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->status, "running");
  EXPECT_EQ(loaded->info["workspace"], "/w");
  EXPECT_EQ(loaded->prompt.size(), 2u);
  ASSERT_TRUE(store->finish_trial(
      trial, TrialEnd{.exit_status = "submitted", .resolved = true, .info = {{"grading", "ok"}}}));
  loaded = store->load_trial(trial);
  EXPECT_EQ(loaded->status, "finished");
  EXPECT_EQ(loaded->exit_status, "submitted");
  EXPECT_EQ(loaded->resolved, true);
  EXPECT_EQ(loaded->info["model"], "deepseek-v4-flash");  // merged, not replaced
  EXPECT_EQ(loaded->info["grading"], "ok");
  EXPECT_EQ(loaded->info["workspace"], "/w");
  EXPECT_GT(loaded->finished_ms, 0);
}

TEST_F(StoreTest, AFailedWriteTakesOnlyItselfDown) {
  auto store = open();
  auto [run, task, trial] = make_trial(*store);
  // Foreign keys hold: a step of a trial that does not exist is refused...
  auto orphan = store->append_step(make_step(trial + 100, 0));
  ASSERT_FALSE(orphan);
  EXPECT_NE(orphan.error().message.find("FOREIGN KEY"), std::string::npos)
      << orphan.error().message;
  // ...and a duplicate step number too, leaving its batch-mates committed.
  std::atomic<int> ok = 0, failed = 0;
  std::vector<std::thread> writers;
  for (int i = 0; i < 4; ++i)
    writers.emplace_back([&, i] {
      if (store->append_step(make_step(trial, i % 2)))
        ++ok;
      else
        ++failed;
    });
  for (auto& w : writers) w.join();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(store->load_steps(trial)->size(), 2u);
  EXPECT_EQ(sql("SELECT count(*) FROM tool_calls"), "2");  // the failed steps left no calls behind

  auto missing = store->finish_trial(trial + 100, TrialEnd{.exit_status = "submitted"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "no trial " + std::to_string(trial + 100));
}

TEST_F(StoreTest, ManyThreadsWriteThroughOneWriter) {
  auto store = open();
  auto [run, task, first] = make_trial(*store);
  std::vector<TrialId> trials;
  for (int t = 0; t < 8; ++t)
    trials.push_back(*store->start_trial(Trial{.run = run, .task = task, .attempt = t + 1}));
  std::vector<std::thread> threads;
  for (TrialId trial : trials)
    threads.emplace_back([&store, trial] {
      for (int i = 0; i < 200; ++i) ASSERT_TRUE(store->append_step(make_step(trial, i)));
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(sql("SELECT count(*) FROM steps"), "1600");
  EXPECT_EQ(sql("SELECT count(*) FROM model_calls"), "1600");
  // Each trial's steps are contiguous: 0..199.
  EXPECT_EQ(sql("SELECT count(*) FROM (SELECT trial_id FROM steps GROUP BY trial_id "
                "HAVING min(step) = 0 AND max(step) = 199 AND count(*) = 200)"),
            "8");
}

struct LoopCheck {
  Store* store;
  RunId run;
  TaskId task;
  std::thread::id io_thread;
  int done = 0;
  bool wrong_thread = false, missing_row = false;
};

// A named coroutine, not a lambda, and arguments named before each co_await: GCC 12 mishandles
// both capturing coroutine lambdas and temporaries inside co_await expressions.
boost::asio::awaitable<void> write_trial(LoopCheck& c, int attempt) {
  Trial trial{.run = c.run, .task = c.task, .attempt = attempt};
  auto started = co_await c.store->async_start_trial(std::move(trial));
  if (!started) co_return;
  for (int i = 0; i < 10; ++i) {
    Step step = make_step(*started, i);
    auto appended = co_await c.store->async_append_step(std::move(step));
    if (!appended || std::this_thread::get_id() != c.io_thread) c.wrong_thread = true;
    // Committed means visible to a reader now.
    if (c.store->load_steps(*started)->size() != static_cast<std::size_t>(i + 1))
      c.missing_row = true;
  }
  TrialEnd end{.exit_status = "submitted"};
  if (co_await c.store->async_finish_trial(*started, std::move(end))) ++c.done;
}

TEST_F(StoreTest, CoroutinesResumeOnTheirOwnThreadAfterTheCommit) {
  auto store = open();
  auto [run, task, trial] = make_trial(*store);
  boost::asio::io_context io;
  LoopCheck check{store.get(), run, task, std::this_thread::get_id()};
  for (int n = 1; n <= 50; ++n)
    boost::asio::co_spawn(io, write_trial(check, n), boost::asio::detached);
  io.run();
  EXPECT_EQ(check.done, 50);
  EXPECT_FALSE(check.wrong_thread);
  EXPECT_FALSE(check.missing_row);
  EXPECT_EQ(sql("SELECT count(*) FROM steps"), "500");
}

// A child process appends steps and reports each one after its commit; it is killed with
// SIGKILL at a random moment. Every reported step must be there, the steps must be contiguous,
// and the file must pass SQLite's integrity check.
TEST_F(StoreTest, SigkillLosesNothingThatCommitted) {
  TrialId trial;
  {
    auto store = open();
    trial = std::get<2>(make_trial(*store));
  }
  std::mt19937 random(static_cast<unsigned>(getpid()));
  for (int round = 0; round < 5; ++round) {
    int acks[2];
    ASSERT_EQ(pipe(acks), 0);
    const int start = round * 100000;
    const pid_t child = fork();
    if (child == 0) {
      close(acks[0]);
      auto store = Store::open(db());
      if (!store) _exit(3);
      for (int i = start;; ++i) {
        if (!(*store)->append_step(make_step(trial, i))) _exit(4);
        if (write(acks[1], &i, sizeof i) != sizeof i) _exit(5);
      }
    }
    close(acks[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 + random() % 150));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited " << WEXITSTATUS(status);
    int last = -1, value;
    while (read(acks[0], &value, sizeof value) == sizeof value) last = value;
    close(acks[0]);
    ASSERT_GE(last, start) << "the child committed nothing before it was killed";

    auto store = open();
    auto steps = store->load_steps(trial);
    ASSERT_TRUE(steps);
    std::size_t in_round = 0;
    for (const Step& s : *steps) in_round += s.index >= start ? 1 : 0;
    // Everything acknowledged is there; at most the step in flight beyond it.
    EXPECT_GE(static_cast<int>(in_round), last - start + 1);
    EXPECT_LE(static_cast<int>(in_round), last - start + 2);
    EXPECT_EQ(sql("PRAGMA integrity_check"), "ok");
  }
}

TEST_F(StoreTest, ListRunsTotalsTokensCostAndOutcomes) {
  auto store = open();
  auto [run, task, trial] = make_trial(*store);
  ASSERT_TRUE(store->append_step(make_step(trial, 0)));
  ASSERT_TRUE(store->append_step(make_step(trial, 1)));
  ASSERT_TRUE(store->finish_trial(trial, TrialEnd{.exit_status = "submitted", .resolved = true}));
  const TrialId second = *store->start_trial(Trial{.run = run, .task = task, .attempt = 1});
  ASSERT_TRUE(store->append_step(make_step(second, 0)));
  const RunId other = *store->create_run(warren::storage::Run{.kind = "eval", .name = "demo"});
  ASSERT_TRUE(store->finish_run(run));

  auto runs = store->list_runs();
  ASSERT_TRUE(runs) << runs.error().message;
  ASSERT_EQ(runs->size(), 2u);
  const RunSummary& s = (*runs)[0];
  EXPECT_EQ(s.run.id, run);
  EXPECT_EQ(s.run.status, "finished");
  EXPECT_EQ(s.tasks, 1);
  EXPECT_EQ(s.trials, 2);
  EXPECT_EQ(s.finished, 1);
  EXPECT_EQ(s.resolved, 1);
  EXPECT_EQ(s.steps, 3);
  EXPECT_EQ(s.prompt_tokens, 3000);
  EXPECT_EQ(s.cached_tokens, 2400);
  EXPECT_NEAR(s.cost_usd, 0.003, 1e-12);
  EXPECT_EQ((*runs)[1].run.id, other);
  EXPECT_EQ((*runs)[1].trials, 0);
  EXPECT_EQ((*runs)[1].cost_usd, 0);

  // One run alone: the same totals, none of the other run's.
  auto one = store->summarize_run(run);
  ASSERT_TRUE(one) << one.error().message;
  EXPECT_EQ(one->run.id, run);
  EXPECT_EQ(one->trials, 2);
  EXPECT_EQ(one->steps, 3);
  EXPECT_EQ(one->prompt_tokens, 3000);
  EXPECT_NEAR(one->cost_usd, 0.003, 1e-12);
  EXPECT_EQ(store->summarize_run(other)->trials, 0);
  EXPECT_FALSE(store->summarize_run(other + 1));

  auto missing = store->load_run(other + 1);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message.rfind("no run " + std::to_string(other + 1), 0), 0u);
}

TEST_F(StoreTest, AtifExportCarriesPromptStepsCallsAndTotals) {
  auto store = open();
  auto [run, task, trial] = make_trial(*store);
  ASSERT_TRUE(store->append_step(make_step(trial, 0)));
  Step last = make_step(trial, 1);
  last.tool_calls[0].arguments = "not json";
  ASSERT_TRUE(store->append_step(last));
  ASSERT_TRUE(store->finish_trial(trial, TrialEnd{.exit_status = "submitted"}));

  auto atif = export_trial_atif(*store, trial);
  ASSERT_TRUE(atif) << atif.error().message;
  EXPECT_EQ((*atif)["schema_version"], "ATIF-v1.4");
  EXPECT_EQ((*atif)["agent"]["model_name"], "deepseek-v4-flash");
  const Json& steps = (*atif)["steps"];
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0]["source"], "system");
  EXPECT_EQ(steps[1]["source"], "user");
  EXPECT_EQ(steps[1]["message"], "fix it");
  EXPECT_EQ(steps[2]["step_id"], 3);
  EXPECT_EQ(steps[2]["source"], "agent");
  EXPECT_EQ(steps[2]["reasoning_content"], "thinking about 0");
  EXPECT_EQ(steps[2]["tool_calls"][0]["arguments"], Json({{"command", "ls"}}));
  EXPECT_EQ(steps[3]["tool_calls"][0]["arguments"], "not json");
  EXPECT_EQ(steps[2]["observation"]["results"][0]["source_call_id"], "call_0");
  EXPECT_EQ(steps[2]["observation"]["results"][0]["content"], "a\nb\n");
  EXPECT_EQ(steps[2]["metrics"]["cached_tokens"], 800);
  EXPECT_EQ((*atif)["final_metrics"]["total_prompt_tokens"], 2000);
  EXPECT_EQ((*atif)["final_metrics"]["total_steps"], 2);
  EXPECT_EQ((*atif)["extra"]["exit_status"], "submitted");

  ASSERT_TRUE(store->put_artifact(Artifact{trial, "patch", "diff --git a/x b/x\n"}));
  ASSERT_TRUE(store->add_event(SandboxEvent{.trial = trial, .kind = "started"}));
  auto json = export_run_json(*store, run);
  ASSERT_TRUE(json) << json.error().message;
  EXPECT_EQ((*json)["run"]["name"], "repo");
  EXPECT_EQ((*json)["tasks"][0]["name"], "fix");
  EXPECT_EQ((*json)["trials"][0]["patch"], "diff --git a/x b/x\n");
  EXPECT_EQ((*json)["trials"][0]["events"][0]["kind"], "started");
  EXPECT_EQ((*json)["trials"][0]["steps"][1]["tool_calls"][0]["arguments"], "not json");
}

}  // namespace
