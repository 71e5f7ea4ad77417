// `warren run` and `warren runs` end to end: the scripted backend on a small repository, the
// diff, the stored trajectory, the exit status, bad input, and SIGKILL followed by --resume.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "../orchestrator/fake_api.hpp"
#include "../sandbox/host_probe.hpp"
#include "cli_util.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class RunCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-run-cli-" + std::to_string(getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "repo");
    std::ofstream(base / "repo" / "greet.sh") << "echo helo\n";
    db = (base / "state" / "warren.db").string();
  }
  void TearDown() override { (void)sandbox::remove_workspace(base.string()); }

  std::string script(const std::vector<std::string>& commands) {
    return write_script(base / "script.txt", commands);
  }
  std::string flags() const { return "--repo " + (base / "repo").string() + " --db " + db; }

  fs::path base;
  std::string db;
};

TEST_F(RunCli, ARunFixesTheRepositoryAndPrintsThePatch) {
  const std::string s = script({"sed -i s/helo/hello/ greet.sh", "sh greet.sh", "submit"});
  auto r = warren("run " + flags() + " --task 'fix the typo' --script " + s + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");  // --json: no progress
  const Json out = Json::parse(r.out);
  EXPECT_EQ(out["exit_status"], "submitted");
  EXPECT_EQ(out["steps"], 3);
  EXPECT_EQ(out["patch"],
            "diff --git a/greet.sh b/greet.sh\nindex 0b8ddb4..2f08be9 100644\n--- a/greet.sh\n+++ "
            "b/greet.sh\n"
            "@@ -1 +1 @@\n-echo helo\n+echo hello\n");
  EXPECT_EQ(slurp((base / "repo" / "greet.sh").string()), "echo helo\n");

  // Without --json: progress on stderr, the patch on stdout or in --patch-out.
  auto again = warren("run " + flags() + " --task t --script " + s + " --patch-out " +
                      (base / "p.diff").string());
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("step 1  bash"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("submitted after 3 steps"), std::string::npos) << again.err;
  EXPECT_EQ(slurp((base / "p.diff").string()), out["patch"].get<std::string>());

  auto list = warren("runs --db " + db + " list --json");
  ASSERT_EQ(list.status, 0) << list.err;
  const Json runs = Json::parse(list.out);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["steps"], 3);
  EXPECT_EQ(runs[0]["status"], "finished");

  auto atif = warren("runs --db " + db + " export 1 --format atif");
  ASSERT_EQ(atif.status, 0) << atif.err;
  const Json trajectory = Json::parse(atif.out);
  EXPECT_EQ(trajectory["schema_version"], "ATIF-v1.4");
  ASSERT_EQ(trajectory["steps"].size(), 5u);  // system, user, three agent steps
  EXPECT_EQ(trajectory["steps"][1]["message"], "fix the typo");
  EXPECT_EQ(trajectory["steps"][3]["tool_calls"][0]["arguments"]["command"], "sh greet.sh");
  EXPECT_EQ(trajectory["steps"][3]["observation"]["results"][0]["content"], "hello\n");
}

// A command whose output is not UTF-8 (a byte 0xFF) and a file in Latin-1 in the patch: the run
// finishes, its record is written, and every output that holds them prints them as U+FFFD.
// Before, nlohmann threw on the first dump of such a string: on the store's writer thread, which
// ended the process.
TEST_F(RunCli, BytesThatAreNotUtf8AreRecordedAndPrintedAsReplacementCharacters) {
  const std::string s =
      script({"printf 'bad \\377 end\\n'", "printf 'caf\\351\\n' > latin.txt", "submit"});
  auto r = warren("run " + flags() + " --task t --script " + s + " --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const Json out = Json::parse(r.out);
  EXPECT_NE(out["patch"].get<std::string>().find("+caf\xEF\xBF\xBD"), std::string::npos)
      << out["patch"];
  auto atif = warren("runs --db " + db + " export 1 --format atif");
  ASSERT_EQ(atif.status, 0) << atif.err;
  const Json trajectory = Json::parse(atif.out);
  EXPECT_EQ(trajectory["steps"][2]["observation"]["results"][0]["content"],
            "bad \xEF\xBF\xBD end\n");
  auto show = warren("runs --db " + db + " show 1 --json");
  EXPECT_EQ(show.status, 0) << show.err;
}

// The whole path with a hosted API: warren run against the fake DeepSeek API on 127.0.0.1, the
// key taken from the environment variable the config names, usage and cost recorded.
TEST_F(RunCli, ARunAgainstAnOpenAiCompatibleServer) {
  FakeApi api;
  FakeApi::Answer fix;
  fix.reasoning = "Fix the typo.";
  fix.calls = {{"bash", R"({"command": "sed -i s/helo/hello/ greet.sh"})"}};
  FakeApi::Answer done;
  done.calls = {{"submit", "{}"}};
  api.plan(fix);
  api.plan(done);
  std::ofstream(base / "config.json")
      << R"({"models": {"fake": {"backend": "openai", "base_url": ")" << api.base_url()
      << R"(", "model": "deepseek-v4-pro", "api_key_env": "FAKE_KEY"}},
    "prices": {"fake": {"input": 1.74, "input_cache_hit": 0.145, "output": 3.48}}})";
  auto r = warren_via("FAKE_KEY=sk-test " + std::string(WARREN_BINARY) + " run " + flags() +
                      " --task 'fix it' --model fake --thinking max --json --config " +
                      (base / "config.json").string());
  ASSERT_EQ(r.status, 0) << r.err;
  const Json out = Json::parse(r.out);
  EXPECT_EQ(out["exit_status"], "submitted");
  EXPECT_EQ(out["prompt_tokens"], 2400);
  EXPECT_EQ(out["cached_tokens"], 2048);
  // Two calls: 176 uncached at 1.74, 1024 cached at 0.145, 80 out at 3.48, per 1M tokens.
  EXPECT_NEAR(out["cost_usd"].get<double>(), 2 * (176 * 1.74 + 1024 * 0.145 + 80 * 3.48) / 1e6,
              1e-12);
  EXPECT_NE(out["patch"].get<std::string>().find("+echo hello"), std::string::npos);
  const auto requests = api.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1]["model"], "deepseek-v4-pro");
  EXPECT_EQ(requests[1]["reasoning_effort"], "max");
  EXPECT_EQ(requests[1]["messages"][2]["reasoning_content"], "Fix the typo.");  // sent back
  EXPECT_EQ(requests[1]["messages"][3]["role"], "tool");
  // The key went in the header only: never into the database.
  const std::string database = slurp(db) + slurp(db + "-wal");
  EXPECT_EQ(database.find("sk-test"), std::string::npos);
}

TEST_F(RunCli, BadInputIsOneLineAndExit2) {
  const std::string task = flags() + " --task t";
  auto missing_key = warren_via("env -u DEEPSEEK_API_KEY " + std::string(WARREN_BINARY) + " run " +
                                task + " --model deepseek-v4-flash");
  EXPECT_EQ(missing_key.status, 2);
  EXPECT_EQ(
      missing_key.err,
      "warren run: the API key for deepseek-v4-flash is missing: set DEEPSEEK_API_KEY (or name "
      "another variable with --api-key-env)\n");

  auto unreachable = warren("run " + task + " --model local-vllm --base-url http://127.0.0.1:1/v1");
  EXPECT_EQ(unreachable.status, 2);
  EXPECT_EQ(unreachable.err,
            "warren run: cannot reach http://127.0.0.1:1/v1: cannot connect to 127.0.0.1:1: "
            "Connection refused\n");

  std::ofstream(base / "bad.json") << R"({"models": {"m": {"backend": "telepathy"}}})";
  auto bad_config = warren("run " + task + " --config " + (base / "bad.json").string());
  EXPECT_EQ(bad_config.status, 2);
  EXPECT_EQ(bad_config.err,
            "warren run: " + (base / "bad.json").string() +
                ": model m: backend \"telepathy\" is not one of openai, anthropic, scripted, "
                "embedded\n");

  // An embedded model needs its checkpoint, and one that is there.
  std::ofstream(base / "embedded.json") << R"({"models": {"e": {"backend": "embedded"}}})";
  auto no_weights =
      warren("run " + task + " --config " + (base / "embedded.json").string() + " --model e");
  EXPECT_EQ(no_weights.status, 2);
  EXPECT_EQ(no_weights.err, "warren run: " + (base / "embedded.json").string() +
                                ": model e: no weights (the checkpoint's folder)\n");
  std::ofstream(base / "nowhere.json")
      << R"({"models": {"e": {"backend": "embedded", "weights": "/nonexistent/ckpt"}}})";
  auto no_checkpoint =
      warren("run " + task + " --config " + (base / "nowhere.json").string() + " --model e");
  EXPECT_EQ(no_checkpoint.status, 2);
  EXPECT_EQ(no_checkpoint.err, "warren run: model e: /nonexistent/ckpt: not a folder\n");

  auto unknown = warren("run " + task + " --model nope");
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("unknown model \"nope\" (configured: deepseek-v4-flash"),
            std::string::npos);

  auto no_repo =
      warren("run --repo " + (base / "nowhere").string() + " --db " + db + " --task t --script x");
  EXPECT_EQ(no_repo.status, 2);
  EXPECT_EQ(no_repo.err, "warren run: cannot read the script x\n");

  auto finished = warren("run --db " + db + " --resume 99");
  EXPECT_EQ(finished.status, 2);
  EXPECT_NE(finished.err.find("no run 99"), std::string::npos) << finished.err;
}

// Killed with SIGKILL in the middle of a step, the run keeps every step that finished, and
// --resume carries on from there in the same workspace.
TEST_F(RunCli, SigkillThenResumeFinishesTheRun) {
  const std::string s =
      script({"sed -i s/helo/hello/ greet.sh",
              "test -e /workspace/.slept || { touch /workspace/.slept; sleep 60; }",
              "echo bye >> greet.sh", "submit"});
  const std::string command =
      std::string(WARREN_BINARY) + " run " + flags() + " --task t --json --script " + s;
  const pid_t child = fork();
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  // Wait until the first step is durable and the second (the sleep) is running.
  bool sleeping = false;
  for (int i = 0; i < 200 && !sleeping; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    sleeping = fs::exists(base / "state" / "workspaces" / "warren.db" / "trial-1" / ".slept");
  }
  ASSERT_TRUE(sleeping);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto shown = warren("runs --db " + db + " show 1 --json");
  ASSERT_EQ(shown.status, 0) << shown.err;
  const Json before = Json::parse(shown.out);
  EXPECT_EQ(before["trials"][0]["status"], "running");
  EXPECT_EQ(before["trials"][0]["steps"].size(), 1u);

  auto resumed = warren("run --db " + db + " --resume 1 --json");
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const Json out = Json::parse(resumed.out);
  EXPECT_EQ(out["exit_status"], "submitted");
  EXPECT_EQ(out["steps"], 4);
  EXPECT_NE(out["patch"].get<std::string>().find("-echo helo\n+echo hello\n+bye\n"),
            std::string::npos)
      << out["patch"];
  auto again = warren("run --db " + db + " --resume 1");
  EXPECT_EQ(again.status, 2);
  EXPECT_EQ(again.err, "warren run: run 1 has finished (submitted): there is nothing to resume\n");
}

}  // namespace
}  // namespace warren::testing
