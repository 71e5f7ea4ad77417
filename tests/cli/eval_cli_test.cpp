// `warren eval` and `warren report` on the demo suite: the oracle resolves every task and nop
// none; filters, shards, resume after SIGKILL. Needs root (sandboxes).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "../orchestrator/fake_api.hpp"
#include "../sandbox/host_probe.hpp"
#include "cli_util.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    state = fs::temp_directory_path() / ("warren-eval-cli-" + std::to_string(getpid()));
    fs::remove_all(state);
    fs::create_directories(state);
    fs::permissions(state, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  // A killed eval may leave a trial's bounded filesystems mounted.
  void TearDown() override { (void)sandbox::remove_workspace(state.string()); }
  std::string eval(const std::string& args) const {
    return "eval " + suite + " --db " + (state / "warren.db").string() + " " + args;
  }
  static std::set<std::string> names(const Json& report) {
    std::set<std::string> out;
    for (const Json& t : report["tasks"])
      if (!t["attempts"].empty()) out.insert(t["name"].get<std::string>());
    return out;
  }

  const std::string suite = std::string(WARREN_SOURCE_DIR) + "/configs/suites/demo";
  fs::path state;
};

TEST_F(EvalCli, TheOracleResolvesEveryDemoTaskAndNopNone) {
  auto oracle = warren(eval("--agent oracle --json"));
  ASSERT_EQ(oracle.status, 0) << oracle.err;
  const Json report = Json::parse(oracle.out);
  EXPECT_EQ(report["tasks_run"], 12);
  EXPECT_EQ(report["resolved"], 12) << report["unresolved"];
  EXPECT_EQ(report["pass_at_k"]["pass@1"], 1.0);
  EXPECT_GE(report["by_category"].size(), 8u);

  auto nop = warren(eval("--agent nop --json"));
  ASSERT_EQ(nop.status, 0) << nop.err;
  const Json none = Json::parse(nop.out);
  EXPECT_EQ(none["resolved"], 0);
  EXPECT_EQ(none["failure_modes"]["test_failed"], 12);

  // The text report names every task; warren report prints the same data later.
  auto text = warren("report 2 --db " + (state / "warren.db").string());
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("resolved 0 of 12 tasks (0.0%)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("repair-makefile"), std::string::npos);
  auto json = warren("report 1 --json --db " + (state / "warren.db").string());
  ASSERT_EQ(json.status, 0);
  EXPECT_EQ(Json::parse(json.out)["resolved"], 12);
}

// An ordinary user's eval: each trial's workspace, tests and verifier folders are bounded
// filesystems as root's are, mounted in Warren's own namespaces; on the host they stay empty. A
// uid with no account, not nobody's: the trial's snapshot meets /proc's root, host root's, which
// the namespace shows as nobody's and the copy must not try to give away.
TEST_F(EvalCli, AnOrdinaryUsersTrialsAreBoundedInWarrensOwnNamespaces) {
  const fs::path tools = state / "tools", mine = state / "user";
  install_warren(tools);
  fs::create_directories(mine / "suite");
  fs::copy(suite + "/word-frequency", mine / "suite" / "word-frequency",
           fs::copy_options::recursive);
  const OrdinaryUser user(4321);
  user.own(mine);
  auto r =
      warren_via("cd " + mine.string() + " && " + user.as_user() + (tools / "warren").string() +
                 " eval suite --agent oracle --json --keep-workspaces --db w.db");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["resolved"], 1) << r.out;
  const std::string mounts = slurp("/proc/" + std::to_string(user.pause()) + "/mountinfo");
  for (const char* folder : {"workspace", "tests", "verifier"}) {
    const fs::path at = mine / "workspaces" / "w.db" / "trial-1" / folder;
    EXPECT_NE(mounts.find(" " + at.string() +
                          " rw,nosuid,nodev,relatime - tmpfs warren-workspace rw,size=2097152k"),
              std::string::npos)
        << folder << "\n"
        << mounts;
    EXPECT_TRUE(fs::is_empty(at)) << at;  // on the host, a mount point only
  }
}

// --agent model: the agent loop against an OpenAI-compatible server (the fake DeepSeek API on
// 127.0.0.1), graded like any other agent, with its tokens and cost in the report.
// An embedded model is opened once for the run: a checkpoint that is not there ends it at the
// start, in one line, with no trial begun.
TEST_F(EvalCli, AnEmbeddedModelWithoutItsCheckpointEndsTheRunAtOnce) {
  const std::string config = (state / "embedded.json").string();
  std::ofstream(config)
      << R"({"models": {"e": {"backend": "embedded", "weights": "/nonexistent/ckpt"}}})";
  auto r = warren(eval("--agent model --model e --config " + config + " --json"));
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_EQ(r.err, "warren eval: model e: /nonexistent/ckpt: not a folder\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(EvalCli, AModelAgentIsGradedWithItsUsage) {
  FakeApi api;
  FakeApi::Answer work;
  work.reasoning = "Count ERROR lines per service.";
  work.calls = {
      {"bash",
       R"({"command": "awk '$2 == \"ERROR\" { gsub(/[\\[\\]]/, \"\", $3); n[$3]++ } END { for (s in n) print s, n[s] }' app.log | sort -k2,2nr -k1,1 > errors.txt"})"}};
  FakeApi::Answer done;
  done.calls = {{"submit", "{}"}};
  api.plan(work);
  api.plan(done);
  const std::string config = (state / "models.json").string();
  std::ofstream(config) << R"({"models": {"fake": {"backend": "openai", "base_url": ")"
                        << api.base_url()
                        << R"(", "model": "deepseek-v4-flash", "api_key_env": ""}},
      "prices": {"fake": {"input": 0.14, "input_cache_hit": 0.028, "output": 0.28}}})";
  auto r = warren(
      eval("--agent model --model fake --config " + config + " --filter count-log-errors --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const Json report = Json::parse(r.out);
  EXPECT_EQ(report["resolved"], 1) << report["tasks"];
  EXPECT_EQ(report["usage"]["prompt_tokens"], 2400);
  EXPECT_NEAR(report["usage"]["cost_usd"].get<double>(),
              2 * (176 * 0.14 + 1024 * 0.028 + 80 * 0.28) / 1e6, 1e-12);
  EXPECT_EQ(api.requests().size(), 2u);
  // The task reached the model as its instruction; the tests never did.
  const std::string first = api.requests()[0].dump();
  EXPECT_NE(first.find("ERROR lines of /app/app.log"), std::string::npos);
  EXPECT_EQ(first.find("test_outputs"), std::string::npos);
}

TEST_F(EvalCli, FiltersAndShardsSliceTheSuiteDeterministically) {
  auto fixes = warren(eval("--agent nop --json --filter 'fix-*'"));
  ASSERT_EQ(fixes.status, 0) << fixes.err;
  EXPECT_EQ(names(Json::parse(fixes.out)),
            (std::set<std::string>{"fix-backup-script", "fix-c-string-bug", "fix-failing-test"}));

  auto first = warren(eval("--agent nop --json --shard 0/2"));
  auto second = warren(eval("--agent nop --json --shard 1/2"));
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_EQ(second.status, 0) << second.err;
  const auto a = names(Json::parse(first.out)), b = names(Json::parse(second.out));
  EXPECT_EQ(a.size(), 6u);
  EXPECT_EQ(b.size(), 6u);
  std::set<std::string> all = a;
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 12u);  // disjoint, and together the whole suite
  EXPECT_EQ(names(Json::parse(warren(eval("--agent nop --json --shard 0/2")).out)),
            a);  // the same again

  // Shards merged back into one run: one report over the whole suite, with an HTML page.
  const std::string merged = (state / "merged.db").string();
  const std::string a_db = (state / "a.db").string(), b_db = (state / "b.db").string();
  ASSERT_EQ(warren("eval " + suite + " --agent oracle --shard 0/2 --db " + a_db).status, 0);
  ASSERT_EQ(warren("eval " + suite + " --agent oracle --shard 1/2 --db " + b_db).status, 0);
  auto joined = warren("eval merge " + a_db + " " + b_db + " --db " + merged + " --json");
  ASSERT_EQ(joined.status, 0) << joined.err;
  const Json whole = Json::parse(joined.out);
  EXPECT_EQ(whole["tasks_run"], 12);
  EXPECT_EQ(whole["resolved"], 12);
  EXPECT_GT(whole["duration_s"]["p50"].get<double>(), 0.0);  // the shards' times, kept
  const std::string page = (state / "report.html").string();
  auto html = warren("report 1 --db " + merged + " --html " + page);
  ASSERT_EQ(html.status, 0) << html.err;
  const std::string text = slurp(page);
  EXPECT_NE(text.find("100.0% resolved"), std::string::npos);
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_NE(text.find("<td>word-frequency</td>"), std::string::npos);
  EXPECT_EQ(text.find("<script"), std::string::npos);  // self-contained, nothing fetched
  auto same = warren("eval merge " + merged + " --db " + merged);
  EXPECT_EQ(same.status, 2);

  // Attempts run one after another per task and give pass@k.
  auto twice = warren(eval("--agent oracle --json --attempts 2 --filter 'word-*'"));
  ASSERT_EQ(twice.status, 0) << twice.err;
  const Json k = Json::parse(twice.out);
  EXPECT_EQ(k["trials"], 2);
  EXPECT_EQ(k["tasks"][0]["attempts"].size(), 2u);
  EXPECT_EQ(k["pass_at_k"]["pass@2"], 1.0);

  auto bad = warren(eval("--shard 2/2"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.err, "warren eval: --shard wants I/N with 0 <= I < N, not 2/2\n");
  auto missing = warren("eval /nonexistent --db " + (state / "warren.db").string());
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(missing.err,
            "warren eval: no suite at /nonexistent (not a directory, .json or .jsonl)\n");
}

// A CI job notices a suite that could not run: trials whose task or environment could not be set
// up make the exit status 1 and are counted apart from those that ran and failed.
TEST_F(EvalCli, TrialsThatNeverRanMakeTheExitStatusOne) {
  const fs::path mixed = state / "mixed";
  fs::create_directories(mixed);
  fs::copy(suite + "/word-frequency", mixed / "word-frequency", fs::copy_options::recursive);
  fs::copy(suite + "/word-frequency", mixed / "broken", fs::copy_options::recursive);
  std::ofstream(mixed / "broken" / "task.toml") << "version = \"1.0\"\n[agent\n";  // cut off
  const std::string db = " --db " + (state / "mixed.db").string();

  auto nop = warren("eval " + mixed.string() + " --agent nop --json" + db);
  EXPECT_EQ(nop.status, 1) << nop.err;
  const Json report = Json::parse(nop.out);
  EXPECT_EQ(report["trials"], 2);
  EXPECT_EQ(report["never_ran"], 1);
  EXPECT_EQ(report["failure_modes"]["environment_error"], 1);
  EXPECT_EQ(report["failure_modes"]["test_failed"], 1);
  EXPECT_NE(nop.err.find("warren eval: 1 of 2 trial(s) never ran"), std::string::npos) << nop.err;

  // The text report and the HTML page say "not run", with the whole reason that blocked the
  // trial, and leave it out of the failed count and the duration chart. Here: an image to build
  // on a base image that no registry gives (tests reach none).
  fs::copy(suite + "/word-frequency", mixed / "needs-image", fs::copy_options::recursive);
  std::ofstream(mixed / "needs-image" / "environment" / "Dockerfile")
      << "FROM registry.invalid/base:1\nWORKDIR /app\nRUN apt-get update && apt-get install -y "
         "python3-dev && rm -rf /var/lib/apt/lists/*\n";
  const std::string html = (state / "report.html").string();
  const std::string images = " --images " + (state / "images").string();
  auto text = warren("eval " + mixed.string() + " --agent nop --html " + html + images + db);
  EXPECT_EQ(text.status, 1) << text.err;
  const std::string reason =
      "needs-image: the base image registry.invalid/base:1 cannot be pulled here (";
  EXPECT_NE(text.out.find("not run   environment_error: " + reason), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("`warren image import registry.invalid/base:1 DIR|TAR` stands one in. "
                          "Log: " +
                          (state / "images" / "logs").string()),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find(", 2 trial(s) not run"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("1 failed, 2 not run"), std::string::npos) << text.err;
  std::ifstream page(html);
  const std::string page_text((std::istreambuf_iterator<char>(page)), {});
  EXPECT_NE(page_text.find("<td>not run</td>"), std::string::npos);
  EXPECT_NE(page_text.find(reason), std::string::npos);
  fs::remove_all(mixed / "needs-image");

  // Every trial ran: what the agent made of them does not change the status.
  auto ran = warren("eval " + mixed.string() + " --agent nop --filter word-frequency" + db);
  EXPECT_EQ(ran.status, 0) << ran.err;
  // The oracle failing a task it can run says the suite is broken there.
  std::ofstream(mixed / "word-frequency" / "solution" / "solve.sh") << "#!/bin/sh\nexit 0\n";
  auto oracle = warren("eval " + mixed.string() + " --agent oracle --filter word-frequency" + db);
  EXPECT_EQ(oracle.status, 1) << oracle.err;
  EXPECT_NE(oracle.err.find("the oracle could not solve 1 task(s)"), std::string::npos)
      << oracle.err;
}

// A record the database cannot take (its disk is full) leaves the trial's result standing, but
// the report read back from the database lacks it: the eval says so and exits 1.
TEST_F(EvalCli, ARecordTheDatabaseCannotTakeMakesTheExitStatusOne) {
  const fs::path task = state / "suite" / "word-frequency";
  fs::create_directories(task.parent_path());
  fs::copy(suite + "/word-frequency", task, fs::copy_options::recursive);
  // The verifier prints 2 MB (two 1 MB streams after the output cap): the test log will not fit.
  std::ofstream(task / "tests" / "test.sh", std::ios::trunc)
      << "#!/bin/bash\nhead -c 3000000 /dev/zero | tr '\\0' x\n"
         "head -c 3000000 /dev/zero | tr '\\0' y >&2\n"
         "if bash /tests/check.sh; then echo 1; else echo 0; fi > /logs/verifier/reward.txt\n";
  const fs::path small = state / "small";
  fs::create_directories(small);
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  const std::string db = " --db " + (small / "warren.db").string();
  auto r = warren("eval " + task.parent_path().string() + " --agent oracle --json" + db);
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("record(s) could not be written to the database"), std::string::npos)
      << r.err;
  const Json report = Json::parse(r.out);  // the rest was recorded: the trial resolved
  EXPECT_EQ(report["resolved"], 1) << r.out;
  (void)sandbox::remove_workspace(small.string());
  umount2(small.c_str(), MNT_DETACH);
}

TEST_F(EvalCli, ResumeAfterSigkillRunsOnlyWhatDidNotFinish) {
  const std::string command =
      std::string(WARREN_BINARY) + " " + eval("--agent oracle --concurrency 1 --json");
  const pid_t child = fork();
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + command + " >/dev/null 2>&1").c_str(), nullptr);
    _exit(127);
  }
  // Wait for a few finished trials, then kill the eval mid-way.
  int finished = 0;
  for (int i = 0; i < 400 && finished < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto list = warren("runs --db " + (state / "warren.db").string() + " list --json");
    if (list.status == 0 && !list.out.empty()) {
      const Json runs = Json::parse(list.out, nullptr, false);
      if (runs.is_array() && !runs.empty()) finished = runs[0]["finished"].get<int>();
    }
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_GE(finished, 3);
  ASSERT_LT(finished, 12) << "the eval finished before it could be killed";

  auto resumed = warren("eval --resume 1 --json --db " + (state / "warren.db").string());
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const Json report = Json::parse(resumed.out);
  EXPECT_EQ(report["resolved"], 12);
  EXPECT_EQ(report["trials"],
            12);  // each task graded once; the cut-short trial was closed as interrupted
  auto shown = warren("runs --db " + (state / "warren.db").string() + " show 1 --json");
  int interrupted = 0;
  const Json run = Json::parse(shown.out);  // named: a loop over a temporary's member dangles
  for (const Json& t : run["trials"]) interrupted += t["exit_status"] == "interrupted";
  EXPECT_LE(interrupted, 1);
}

}  // namespace
}  // namespace warren::testing
