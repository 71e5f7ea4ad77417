// The agent loop end to end with the scripted backend: real sandbox sessions, a real SQLite store,
// real tools. Needs root, like the sandbox suite.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "conversation.hpp"
#include "host_probe.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {
namespace {

namespace fs = std::filesystem;

// A completion as the model writes it in thinking mode: reasoning, then calls.
std::string completion(const std::string& reasoning, const std::vector<std::string>& invokes) {
  std::string text = reasoning + "</think>";
  if (invokes.empty()) return text + "I am done thinking.";
  text += "\n\n<｜DSML｜tool_calls>\n";
  for (std::size_t i = 0; i < invokes.size(); ++i) text += (i ? "\n" : "") + invokes[i];
  return text + "\n</｜DSML｜tool_calls>";
}

std::string param(const std::string& name, const std::string& value) {
  return "<｜DSML｜parameter name=\"" + name + "\" string=\"true\">" + value +
         "</｜DSML｜parameter>";
}

std::string invoke(const std::string& tool, const std::vector<std::string>& params) {
  std::string text = "<｜DSML｜invoke name=\"" + tool + "\">\n";
  for (const std::string& p : params) text += p + "\n";
  return text + "</｜DSML｜invoke>";
}

std::string bash(const std::string& command) {
  return invoke("bash", {param("command", command)});
}
std::string submit() {
  return invoke("submit", {});
}

class Agent : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-agent-test-" + std::to_string(getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "repo");
    std::ofstream(base / "repo" / "calc.py") << "def add(a, b):\n    return a - b\n";
    std::ofstream(base / "repo" / "test_calc.py")
        << "import calc\nassert calc.add(2, 3) == 5\nprint('ok')\n";
    auto opened = storage::Store::open(base / "warren.db");
    ASSERT_TRUE(opened);
    store = std::move(*opened);
    config = *Config::load();
  }
  void TearDown() override {
    store.reset();
    fs::remove_all(base);
  }

  TaskRunResult run(std::vector<std::string> completions, AgentSettings settings = {}) {
    boost::asio::io_context io;
    auto backend = make_scripted_backend_from(std::move(completions));
    TaskRunOptions o;
    o.repo = base / "repo";
    o.task = "make the test pass";
    o.model = ModelConfig{.name = "scripted", .backend = BackendKind::Scripted};
    o.settings = settings;
    o.workspaces = base / "workspaces";
    std::optional<Result<TaskRunResult>> result;
    boost::asio::co_spawn(io, run_task(o, *backend, runtime, *store, config, nullptr),
                          [&](std::exception_ptr e, Result<TaskRunResult> r) {
                            if (e) std::rethrow_exception(e);
                            result = std::move(r);
                          });
    io.run();
    EXPECT_TRUE(result && *result) << (result ? result->error().message : "no result");
    return **result;
  }

  fs::path base;
  sandbox::Runtime runtime;
  std::unique_ptr<storage::Store> store;
  Config config;
};

TEST_F(Agent, FixesTheRepositoryRecordsEveryStepAndReturnsThePatch) {
  auto r = run({
      completion("Run the test first.", {bash("python3 test_calc.py")}),
      completion(
          "add subtracts.",
          {invoke("str_replace_editor", {param("command", "str_replace"), param("path", "calc.py"),
                                         param("old_str", "a - b"), param("new_str", "a + b")}),
           bash("python3 test_calc.py")}),
      completion("Done.", {submit()}),
  });
  EXPECT_EQ(to_string(r.outcome.exit_status), "submitted");
  EXPECT_EQ(r.outcome.steps, 3);
  EXPECT_EQ(r.patch,
            "diff --git a/calc.py b/calc.py\nindex 12ee743..4693ad3 100644\n--- a/calc.py\n+++ "
            "b/calc.py\n"
            "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n");
  // The repository itself is untouched; the workspace has the change.
  EXPECT_EQ(std::ifstream(base / "repo" / "calc.py").rdbuf() != nullptr, true);
  std::ifstream original(base / "repo" / "calc.py");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(original), {}),
            "def add(a, b):\n    return a - b\n");

  auto steps = store->load_steps(r.trial);
  ASSERT_TRUE(steps);
  ASSERT_EQ(steps->size(), 3u);
  EXPECT_EQ((*steps)[0].reasoning_content, "Run the test first.");
  ASSERT_EQ((*steps)[0].tool_calls.size(), 1u);
  EXPECT_NE((*steps)[0].tool_calls[0].result.find("AssertionError"), std::string::npos);
  EXPECT_EQ((*steps)[0].tool_calls[0].exit_code, 1);
  ASSERT_EQ((*steps)[1].tool_calls.size(), 2u);
  EXPECT_NE((*steps)[1].tool_calls[0].result.find("has been edited"), std::string::npos);
  EXPECT_EQ((*steps)[1].tool_calls[1].result, "ok\n");
  EXPECT_EQ((*steps)[1].tool_calls[1].exit_code, 0);
  EXPECT_EQ((*steps)[1].model_calls.size(), 1u);
  EXPECT_GT((*steps)[1].model_calls[0].prompt_tokens, (*steps)[0].model_calls[0].prompt_tokens);

  auto trial = store->load_trial(r.trial);
  EXPECT_EQ(trial->status, "finished");
  EXPECT_EQ(trial->exit_status, "submitted");
  auto events = store->load_events(r.trial);
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ((*events)[0].kind, "started");
  EXPECT_EQ((*events)[1].kind, "stopped");
  EXPECT_EQ((*events)[1].detail["exit_status"], "submitted");
  EXPECT_EQ((*events)[2].kind, "diff");
  EXPECT_EQ((*events)[2].detail["bytes"], r.patch.size());
  auto patch = store->load_artifact(r.trial, "patch");
  ASSERT_TRUE(patch && *patch);
  EXPECT_EQ((*patch)->content, r.patch);
}

TEST_F(Agent, TheEmbeddedEngineRunsTheLoop) {
  // A tiny random checkpoint writes noise; a logits processor (the seam grammars use) makes it
  // write two recorded completions, token by token, each ended by EOS. Everything else is the
  // engine's: the prompt encoded and tokenized, every token generated, the text parsed.
  const fs::path weights = base / "model";
  ASSERT_TRUE(inference::write_random_checkpoint(inference::preset_config(inference::Preset::Tiny),
                                                 weights.string(), 5));
  auto tokenizer = inference::Tokenizer::load((weights / "tokenizer.json").string());
  ASSERT_TRUE(tokenizer);
  std::vector<std::vector<std::int32_t>> answers;
  for (const std::string& text : {completion("Make the file.", {bash("echo made > made.txt")}),
                                  completion("Done.", {submit()})}) {
    answers.push_back(tokenizer->encode(text));
    answers.back().push_back(1);  // EOS
  }
  std::size_t answer = 0;
  EmbeddedOptions options;
  options.logits_processor = [&](std::span<float> logits, std::span<const std::int32_t> generated) {
    if (generated.empty() && answer < answers.size()) ++answer;
    const auto& forced = answers[answer - 1];
    const std::int32_t next = forced[std::min(generated.size(), forced.size() - 1)];
    for (float& l : logits) l = -1e30f;
    logits[static_cast<std::size_t>(next)] = 0;
  };
  const ModelConfig model{.name = "tiny-embedded",
                          .backend = BackendKind::Embedded,
                          .max_output_tokens = 512,
                          .weights = weights.string()};
  auto backend = make_embedded_backend(model, options);
  ASSERT_TRUE(backend) << backend.error().message;

  boost::asio::io_context io;
  TaskRunOptions o;
  o.repo = base / "repo";
  o.task = "make a file";
  o.model = model;
  o.workspaces = base / "workspaces";
  std::optional<Result<TaskRunResult>> result;
  boost::asio::co_spawn(io, run_task(o, **backend, runtime, *store, config, nullptr),
                        [&](std::exception_ptr e, Result<TaskRunResult> r) {
                          if (e) std::rethrow_exception(e);
                          result = std::move(r);
                        });
  io.run();
  ASSERT_TRUE(result && *result) << (result ? result->error().message : "no result");
  const TaskRunResult& r = **result;
  EXPECT_EQ(to_string(r.outcome.exit_status), "submitted") << r.outcome.message;
  EXPECT_EQ(r.outcome.steps, 2);
  EXPECT_NE(r.patch.find("+++ b/made.txt"), std::string::npos) << r.patch;
  auto steps = store->load_steps(r.trial);
  ASSERT_TRUE(steps);
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].reasoning_content, "Make the file.");
  ASSERT_EQ((*steps)[0].tool_calls.size(), 1u);
  EXPECT_EQ((*steps)[0].tool_calls[0].exit_code, 0);
  // Token counts are the engine's own: the completion's tokens with EOS, the prompt's encoding.
  ASSERT_EQ((*steps)[0].model_calls.size(), 1u);
  EXPECT_EQ((*steps)[0].model_calls[0].completion_tokens,
            static_cast<std::int64_t>(answers[0].size()));
  EXPECT_GT((*steps)[1].model_calls[0].prompt_tokens, (*steps)[0].model_calls[0].prompt_tokens);
}

TEST_F(Agent, BadArgumentsGetAnErrorResultAndTheLoopGoesOn) {
  auto r = run({
      completion("", {invoke("str_replace_editor", {param("command", "view")})}),  // no path
      completion("", {invoke("no_such_tool", {})}),
      completion("", {invoke("str_replace_editor",
                             {param("command", "str_replace"), param("path", "calc.py"),
                              param("old_str", "not there"), param("new_str", "x")})}),
      completion("", {submit()}),
  });
  EXPECT_EQ(to_string(r.outcome.exit_status), "submitted");
  auto steps = *store->load_steps(r.trial);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_NE(steps[0].tool_calls[0].result.find("was not run"), std::string::npos)
      << steps[0].tool_calls[0].result;
  EXPECT_NE(steps[0].tool_calls[0].result.find("path"), std::string::npos);
  EXPECT_NE(steps[1].tool_calls[0].result.find("no_such_tool"), std::string::npos);
  EXPECT_NE(steps[2].tool_calls[0].result.find("does not occur verbatim"), std::string::npos);
  EXPECT_EQ(r.patch, "");
}

TEST_F(Agent, AnswersWithoutToolCallsEndInExitFormat) {
  AgentSettings settings;
  settings.limits.max_format_errors = 2;
  auto r =
      run({completion("hmm", {}), completion("hmm", {}), completion("", {submit()})}, settings);
  EXPECT_EQ(to_string(r.outcome.exit_status), "exit_format");
  auto steps = *store->load_steps(r.trial);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_NE(steps[0].observation.find("called no tool"), std::string::npos);
}

TEST_F(Agent, TheStepLimitHolds) {
  AgentSettings settings;
  settings.limits.max_steps = 2;
  auto r = run({completion("", {bash("true")}), completion("", {bash("true")}),
                completion("", {bash("true")})},
               settings);
  EXPECT_EQ(to_string(r.outcome.exit_status), "exit_steps");
  EXPECT_EQ(r.outcome.steps, 2);
}

TEST_F(Agent, TheTimeLimitHoldsInsideACommand) {
  AgentSettings settings;
  settings.limits.timeout = std::chrono::seconds(2);
  const auto start = std::chrono::steady_clock::now();
  auto r =
      run({completion("", {bash("sleep 30; echo never")}), completion("", {submit()})}, settings);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(to_string(r.outcome.exit_status), "exit_time");
  EXPECT_LT(took, std::chrono::seconds(10));  // 2 s and the diff, not 30 s
  auto steps = *store->load_steps(r.trial);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_NE(steps[0].tool_calls[0].result.find("the trial's time limit was reached"),
            std::string::npos)
      << steps[0].tool_calls[0].result;
}

TEST_F(Agent, ShellAndEditorCallsRunInTheOrderGiven) {
  // The editor works on the files the shell reads: a file it creates after a slow command is not
  // there for that command, and is there for the next. Results come back in call order.
  auto r = run({completion("", {bash("sleep 0.3; ls new.txt 2>&1; true"),
                                invoke("str_replace_editor",
                                       {param("command", "create"), param("path", "new.txt"),
                                        param("file_text", "hello\n")}),
                                bash("cat new.txt")}),
                completion("", {submit()})});
  auto steps = *store->load_steps(r.trial);
  ASSERT_EQ(steps[0].tool_calls.size(), 3u);
  EXPECT_EQ(steps[0].tool_calls[0].name, "bash");
  EXPECT_EQ(steps[0].tool_calls[0].result,
            "ls: cannot access 'new.txt': No such file or directory\n");
  EXPECT_EQ(steps[0].tool_calls[1].result, "File created at new.txt.");
  EXPECT_EQ(steps[0].tool_calls[2].result, "hello\n");
  EXPECT_NE(r.patch.find("+hello"), std::string::npos);
}

TEST_F(Agent, TheShellKeepsStateAndLongOutputIsCut) {
  AgentSettings settings;
  settings.limits.observation_bytes = 1000;
  auto r = run({completion("", {bash("cd /tmp && export X=42")}),
                completion("", {bash("echo $PWD $X; seq 1 5000")}), completion("", {submit()})},
               settings);
  auto steps = *store->load_steps(r.trial);
  const std::string& out = steps[1].tool_calls[0].result;
  EXPECT_EQ(out.rfind("/tmp 42\n1\n2\n", 0), 0u) << out.substr(0, 100);
  EXPECT_NE(out.find("bytes cut from the middle"), std::string::npos);
  EXPECT_TRUE(out.ends_with("4999\n5000\n"));
  EXPECT_TRUE(steps[1].tool_calls[0].truncated);
  EXPECT_LT(out.size(), 1100u);
}

TEST_F(Agent, TheEditorViewsInsertsAndUndoesInsideTheSandboxOnly) {
  auto editor = [](std::vector<std::string> params) {
    return invoke("str_replace_editor", std::move(params));
  };
  auto r = run(
      {completion("", {editor({param("command", "insert"), param("path", "calc.py"),
                               param("new_str", "# header"),
                               "<｜DSML｜parameter name=\"insert_line\" "
                               "string=\"false\">0</｜DSML｜parameter>"})}),
       completion("", {editor({param("command", "view"), param("path", "/workspace/calc.py")})}),
       completion("", {editor({param("command", "undo_edit"), param("path", "calc.py")})}),
       completion("", {bash("ln -s /etc/shadow leak")}),
       completion("", {editor({param("command", "view"), param("path", "leak")})}),
       completion("", {submit()})});
  auto steps = *store->load_steps(r.trial);
  EXPECT_EQ(steps[1].tool_calls[0].result,
            "     1\t# header\n     2\tdef add(a, b):\n     3\t    return a - b\n");
  EXPECT_NE(steps[2].tool_calls[0].result.find("undone"), std::string::npos);
  // The sandbox's /etc/shadow is masked (empty); the host's is never read.
  EXPECT_EQ(steps[4].tool_calls[0].result.find("root:"), std::string::npos)
      << steps[4].tool_calls[0].result;
  EXPECT_EQ(r.patch.find("# header"), std::string::npos);
}

TEST(Conversation, ElisionKeepsThePrefixAndNeverRepeatsTheTask) {
  auto c = detail::Conversation::from_prompt(Json::array(
      {{{"role", "system"}, {"content", "sys"}}, {{"role", "user"}, {"content", "the task"}}}));
  ASSERT_TRUE(c);
  for (int i = 0; i < 20; ++i) {
    storage::Step step{.index = i, .content = std::to_string(i)};
    step.tool_calls.push_back({.call_id = std::to_string(i),
                               .name = "bash",
                               .arguments = "{}",
                               .result = std::string(4000, 'x')});
    c->add_step(step);
  }
  const auto before = c->messages();
  EXPECT_EQ(c->make_room(1'000'000, 1000), 0);  // plenty of room: nothing changes
  auto elided = c->make_room(20000, 2000);      // ~20k tokens used of a 20k window
  ASSERT_TRUE(elided);
  EXPECT_GT(*elided, 0);
  const auto after = c->messages();
  ASSERT_EQ(after.size(), before.size());  // same turns, nothing added
  EXPECT_LE(c->estimated_tokens(), 10000);
  // The prompt and every assistant turn are untouched; only old outputs changed, oldest first.
  int task_mentions = 0;
  bool seen_kept = false;
  for (std::size_t i = 0; i < after.size(); ++i) {
    if (after[i].content.find("the task") != std::string::npos) ++task_mentions;
    if (after[i].role != toolcall::Role::Tool) {
      EXPECT_EQ(after[i].content, before[i].content);
      continue;
    }
    const bool was_elided = after[i].content.starts_with("[output elided");
    if (!was_elided) seen_kept = true;
    EXPECT_FALSE(was_elided && seen_kept) << "an output was elided after a kept one, at " << i;
  }
  EXPECT_EQ(task_mentions, 1);
  EXPECT_FALSE(c->make_room(100, 50));  // cannot fit at all: exit_context
}

}  // namespace
}  // namespace warren::orchestrator
