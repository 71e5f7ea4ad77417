// Eval trials end to end: real sandboxes, the oracle through the scripted backend and the DSML
// parser, grading with the local pytest or Harbor's reward file. Needs root.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "host_probe.hpp"
#include "nlohmann/json.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

TEST(PytestSummary, IsReadTheWayTerminalBenchReadsIt) {
  const std::string output =
      "============================= test session starts ==============================\n"
      "tests/test_outputs.py ..F\n"
      "PASSED tests/test_outputs.py::test_one - looks like a dash\n"
      "=========================== short test summary info ============================\n"
      "PASSED tests/test_outputs.py::test_exists\n"
      "XFAIL tests/test_outputs.py::test_known - reason\n"
      "FAILED tests/test_outputs.py::test_content - AssertionError: assert 'a' == 'b' - extra\n"
      "ERROR: tests/test_outputs.py::test_setup\n"
      "noise line\n"
      "========================= 1 failed, 2 passed in 0.03s ==========================\n";
  auto tests = parse_pytest_summary(output);
  ASSERT_TRUE(tests);
  ASSERT_EQ(tests->size(), 4u);
  EXPECT_EQ((*tests)[0].name, "test_exists");
  EXPECT_TRUE((*tests)[0].passed());
  EXPECT_EQ((*tests)[1].status, "XFAIL");
  EXPECT_TRUE((*tests)[1].passed());
  EXPECT_EQ((*tests)[2].name, "test_content - AssertionError: assert 'a' == 'b'");
  EXPECT_FALSE((*tests)[2].passed());
  EXPECT_EQ((*tests)[3].status, "ERROR");
  EXPECT_FALSE(parse_pytest_summary("1 passed in 0.01s\n"));
}

TEST(JunitReport, IsReadAsPytestNodeIds) {
  const std::string xml =
      R"(<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1")"
      R"( failures="1" skipped="2" tests="6">)"
      R"(<testcase classname="tests.test_outputs" name="test_exists" file="tests/test_outputs.py")"
      R"( line="3" time="0.001" />)"
      R"(<testcase classname="tests.test_outputs.TestParse" name="test_case[a-1]")"
      R"( file="tests/test_outputs.py" line="9"><failure message="assert 1 == 2">x</failure>)"
      R"(</testcase>)"
      R"(<testcase classname="test_top" name="test_e" file="test_top.py"><error message="e"/>)"
      R"(</testcase>)"
      R"(<testcase classname="test_top" name="test_s" file="test_top.py"><skipped type=)"
      R"("pytest.skip" message="s"/></testcase>)"
      R"(<testcase classname="test_top" name="test_x" file="test_top.py"><skipped type=)"
      R"("pytest.xfail" message="x"/></testcase>)"
      R"(<testcase classname="pkg.test_y" name="test_v2" /></testsuite></testsuites>)";
  auto tests = parse_junit_report(xml);
  ASSERT_TRUE(tests);
  std::vector<std::string> seen;
  for (const TestResult& t : *tests) seen.push_back(t.id + " " + t.name + " " + t.status);
  EXPECT_EQ(seen,
            (std::vector<std::string>{
                "tests/test_outputs.py::test_exists test_exists PASSED",
                "tests/test_outputs.py::TestParse::test_case[a-1] TestParse::test_case[a-1] "
                "FAILED",
                "test_top.py::test_e test_e ERROR", "test_top.py::test_s test_s SKIPPED",
                "test_top.py::test_x test_x XFAIL", "pkg/test_y.py::test_v2 test_v2 PASSED"}));
  EXPECT_FALSE(parse_junit_report("PASSED tests/test_outputs.py::test_exists\n"));
  EXPECT_FALSE(parse_junit_report("<html/>"));
}

TEST(CtrfReport, IsReadAsPytestStatuses) {
  const std::string json = R"({"results": {"tool": {"name": "pytest"},
    "summary": {"tests": 5, "passed": 1, "failed": 1, "skipped": 1, "pending": 1, "other": 1},
    "tests": [
      {"name": "test_outputs.py::test_ok", "status": "passed", "duration": 3},
      {"name": "test_outputs.py::TestA::test_bad", "status": "failed", "duration": 1},
      {"name": "test_skip", "status": "skipped"},
      {"name": "test_outputs.py::test_later", "status": "pending"},
      {"name": "test_outputs.py::test_odd", "status": "other"},
      {"status": "passed"}]}})";
  auto tests = parse_ctrf_report(json);
  ASSERT_TRUE(tests);
  std::vector<std::string> seen;
  for (const TestResult& t : *tests) seen.push_back(t.id + " " + t.name + " " + t.status);
  EXPECT_EQ(seen,
            (std::vector<std::string>{"test_outputs.py::test_ok test_ok PASSED",
                                      "test_outputs.py::TestA::test_bad TestA::test_bad FAILED",
                                      "test_skip test_skip SKIPPED",
                                      "test_outputs.py::test_later test_later SKIPPED",
                                      "test_outputs.py::test_odd test_odd ERROR"}));
  EXPECT_FALSE(parse_ctrf_report("{\"tests\": []}"));
  EXPECT_FALSE(parse_ctrf_report("<testsuites/>"));
}

class Trials : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    root = fs::temp_directory_path() / ("warren-trial-test-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "state");
    fs::permissions(root, fs::perms::owner_all | fs::perms::others_exec | fs::perms::group_exec);
    store = std::move(*storage::Store::open(root / "state" / "warren.db"));
    config = *Config::load();
    run = *store->create_run(storage::Run{.kind = "eval", .name = "test"});
  }
  void TearDown() override {
    store.reset();
    (void)sandbox::remove_workspace(root.string());  // kept workspaces are bounded filesystems
  }
  void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  // Terminal-Bench: double the numbers of /app/data/in.txt into /app/out.txt.
  fs::path terminal_bench_task() {
    const fs::path d = root / "suite" / "double";
    write(d / "task.yaml",
          "instruction: Double every number in data/in.txt into out.txt.\nmax_agent_timeout_sec: "
          "60\n");
    write(d / "Dockerfile", "FROM python:3.13\nWORKDIR /app\nCOPY data /app/data\nENV FACTOR=2\n");
    write(d / "data" / "in.txt", "1\n2\n3\n");
    write(d / "solution.sh",
          "while read n; do echo $((n * FACTOR)); done < data/in.txt > out.txt\n");
    write(d / "run-tests.sh",
          "apt-get install -y curl\ncurl -LsSf https://astral.sh/uv/install.sh | sh\nuv run pytest "
          "$TEST_DIR/test_outputs.py -rA\n");
    write(d / "tests" / "test_outputs.py",
          "from pathlib import Path\n\ndef test_exists():\n    assert "
          "Path('/app/out.txt').exists()\n\n"
          "def test_content():\n    assert Path('/app/out.txt').read_text() == '2\\n4\\n6\\n'\n");
    return d;
  }
  // Harbor: the verifier writes 1 when /app/answer.txt says 42.
  fs::path harbor_task() {
    const fs::path d = root / "suite" / "answer";
    write(d / "task.toml", "[agent]\ntimeout_sec = 60.0\n[verifier]\ntimeout_sec = 30.0\n");
    write(d / "instruction.md", "Write 42 into /app/answer.txt.\n");
    write(d / "environment" / "Dockerfile", "FROM ubuntu:24.04\nWORKDIR /app\n");
    write(d / "solution" / "solve.sh", "#!/bin/bash\necho 42 > /app/answer.txt\n");
    write(d / "tests" / "test.sh",
          "#!/bin/bash\nif [ \"$(cat /app/answer.txt)\" = 42 ]; then echo 1; else echo 0; fi > "
          "/logs/verifier/reward.txt\n");
    return d;
  }

  TrialReport trial(const fs::path& dir, const std::string& agent,
                    sandbox::Network network = sandbox::Network::None, bool stand_ins = false) {
    auto suite = load_suite(dir.string());
    EXPECT_TRUE(suite);
    const Task& task = (*suite)[0];
    EXPECT_EQ(task.load_error, "");
    const storage::TaskId task_id =
        *store->add_task(storage::Task{.run = run,
                                       .name = unique_name(task.name + agent),
                                       .instruction = task.instruction,
                                       .metadata = {{"format", to_string(task.format)}}});
    EvalSettings settings;
    settings.agent = *agent_kind(agent);
    settings.workspaces = (root / "state" / "trials").string();
    settings.keep_workspaces = true;  // some tests look at what the agent left
    settings.network = network;
    settings.stand_ins = stand_ins;
    boost::asio::io_context io;
    std::optional<TrialReport> report;
    boost::asio::co_spawn(io, run_trial(task, 0, settings, runtime, *store, config, run, task_id),
                          [&](std::exception_ptr e, TrialReport r) {
                            if (e) std::rethrow_exception(e);
                            report = std::move(r);
                          });
    io.run();
    return *report;
  }

  // A task name of its own for each trial, as a run holds each once: `name` the first time.
  std::string unique_name(const std::string& name) {
    std::string unique = name;
    for (int n = 2; !names.insert(unique).second; ++n) unique = name + "-" + std::to_string(n);
    return unique;
  }
  std::set<std::string> names;
  fs::path root;
  sandbox::Runtime runtime;
  std::unique_ptr<storage::Store> store;
  Config config;
  storage::RunId run = 0;
};

TEST_F(Trials, TheOracleSolvesATerminalBenchTaskAndNopDoesNot) {
  const fs::path task = terminal_bench_task();
  const TrialReport oracle = trial(task, "oracle");
  EXPECT_TRUE(oracle.resolved) << to_string(oracle.failure_mode) << ": " << oracle.message;
  EXPECT_EQ(to_string(oracle.failure_mode), "");
  EXPECT_EQ(orchestrator::to_string(oracle.agent.exit_status), "submitted");
  ASSERT_EQ(oracle.tests.size(), 2u);
  EXPECT_EQ(oracle.tests[1].name, "test_content");
  // The oracle went through the tool-call path: a recorded bash call carrying the solution.
  auto steps = *store->load_steps(oracle.trial);
  ASSERT_EQ(steps.size(), 2u);
  ASSERT_EQ(steps[0].tool_calls.size(), 1u);
  EXPECT_NE(steps[0].tool_calls[0].arguments.find("FACTOR"), std::string::npos);
  EXPECT_EQ(steps[0].tool_calls[0].exit_code, 0);
  auto recorded = *store->load_trial(oracle.trial);
  EXPECT_EQ(recorded.resolved, true);
  EXPECT_EQ(recorded.info["tests"].size(), 2u);

  const TrialReport nop = trial(task, "nop");
  EXPECT_FALSE(nop.resolved);
  EXPECT_EQ(to_string(nop.failure_mode), "test_failed");
  ASSERT_EQ(nop.tests.size(), 2u);
  EXPECT_EQ(nop.tests[0].status, "FAILED");
  EXPECT_EQ((*store->load_trial(nop.trial)).failure_mode, "test_failed");
}

// The test script itself runs, as Terminal-Bench runs it; offline, its network steps meet
// stand-ins (configs/offline/warren-offline) that use what the environment has and name what it
// lacks. Each form here is common in the original tasks.
TEST_F(Trials, OfflineTheTestScriptsNetworkStepsUseWhatTheEnvironmentHas) {
  const fs::path task = terminal_bench_task();
  write(task / "run-tests.sh",
        "apt-get update; apt-get install -y curl\n"
        "curl -LsSf https://astral.sh/uv/0.7.13/install.sh | sh\n"
        "source $HOME/.local/bin/env\n"
        "uv init && uv add pytest==8.4.1 || exit 9\n"
        "uv venv .tbench-testing && source .tbench-testing/bin/activate || exit 9\n"
        "uv pip install pytest || exit 9\n"
        "pip install pytest==8.4.1 || exit 9\n"
        "uv add pytest no-such-package-warren && exit 9\n"
        "uvx --with no-such-package-warren pytest && exit 9\n"
        "uvx -p 3.13 --with pytest pytest $TEST_DIR/test_outputs.py -rA\n");
  const TrialReport oracle = trial(task, "oracle");
  EXPECT_TRUE(oracle.resolved) << to_string(oracle.failure_mode) << ": " << oracle.message;
  EXPECT_EQ(oracle.tests.size(), 2u);
  auto log = store->load_artifact(oracle.trial, "tests");
  ASSERT_TRUE(log && *log);
  const std::string& text = (*log)->content;
  EXPECT_NE(text.find("warren-offline: uv stands in (no network)"), std::string::npos) << text;
  EXPECT_NE(text.find("warren-offline: not installed here, and there is no network to "
                      "fetch them: no-such-package-warren\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("2 passed"), std::string::npos) << text;
}

TEST_F(Trials, TheAgentNeverSeesTheTests) {
  const fs::path task = terminal_bench_task();
  write(task / "solution.sh", "ls /tests > out.txt 2>&1 || echo no tests here >> out.txt\n");
  const TrialReport r = trial(task, "oracle");
  EXPECT_FALSE(r.resolved);
  const fs::path out =
      root / "state" / "trials" / ("trial-" + std::to_string(r.trial)) / "workspace" / "out.txt";
  std::ifstream in(out);
  const std::string seen((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(seen.find("No such file or directory"), std::string::npos) << seen;
  EXPECT_NE(seen.find("no tests here"), std::string::npos) << seen;
}

TEST_F(Trials, InlineTestsAndSolutionStepsThatFailRunAsTerminalBenchRunsThem) {
  const fs::path task = terminal_bench_task();
  // No tests/ folder: run-tests.sh writes its test and runs it.
  fs::remove_all(task / "tests");
  write(task / "run-tests.sh",
        "cat > /tmp/test_inline.py <<'EOF'\nfrom pathlib import Path\n\ndef test_content():\n"
        "    assert Path('/app/out.txt').read_text() == '2\\n4\\n6\\n'\nEOF\n"
        "python3 -m pytest -rA /tmp/test_inline.py\n");
  // A step that fails does not stop the next.
  fs::remove(task / "solution.sh");
  write(task / "solution.yaml",
        "- command: false\n- command: cd /app\n- command: 'while read n; do echo $((n * FACTOR)); "
        "done < data/in.txt > out.txt'\n");
  const TrialReport r = trial(task, "oracle");
  EXPECT_TRUE(r.resolved) << to_string(r.failure_mode) << ": " << r.message;
  ASSERT_EQ(r.tests.size(), 1u);
  EXPECT_EQ(r.tests[0].name, "test_content");
}

TEST_F(Trials, AHarborTaskWithoutASolutionRunsForNopButNotForTheOracle) {
  const fs::path task = harbor_task();
  fs::remove_all(task / "solution");
  const TrialReport nop = trial(task, "nop");
  EXPECT_EQ(to_string(nop.failure_mode), "test_failed") << nop.message;
  const TrialReport oracle = trial(task, "oracle");
  EXPECT_EQ(to_string(oracle.failure_mode), "environment_error");
  EXPECT_NE(oracle.message.find("no reference solution"), std::string::npos) << oracle.message;
}

TEST_F(Trials, AHarborTaskIsGradedByItsReward) {
  const TrialReport oracle = trial(harbor_task(), "oracle");
  EXPECT_TRUE(oracle.resolved) << to_string(oracle.failure_mode) << ": " << oracle.message;
  EXPECT_EQ(oracle.reward, 1.0);
  const TrialReport nop = trial(harbor_task(), "nop");
  EXPECT_FALSE(nop.resolved);
  EXPECT_EQ(nop.reward, 0.0);
  EXPECT_EQ(to_string(nop.failure_mode), "test_failed");
}

// Terminal-Bench 2's verifiers, as Harbor runs them: uv installed at test time, then uvx with
// pinned test dependencies and pytest-json-ctrf (PyPI only), its --ctrf report in
// /logs/verifier. Offline, the stand-ins serve every step and --ctrf works; the tests' own
// results come from that report.
TEST_F(Trials, AHarborVerifierThatInstallsUvAndWritesACtrfReportRunsOffline) {
  const fs::path task = harbor_task();
  write(task / "tests" / "test.sh",
        "#!/bin/bash\n"
        "curl -LsSf https://astral.sh/uv/0.9.5/install.sh | sh\n"
        "source $HOME/.local/bin/env\n"
        "uvx \\\n  -p 3.13 \\\n  -w pytest==8.4.1 \\\n  -w pytest-json-ctrf==0.3.5 \\\n"
        "  pytest --ctrf /logs/verifier/ctrf.json /tests/test_outputs.py -rA\n"
        "if [ $? -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > "
        "/logs/verifier/reward.txt; fi\n");
  write(task / "tests" / "test_outputs.py",
        "from pathlib import Path\n\ndef test_exists():\n    assert "
        "Path('/app/answer.txt').exists()\n\n"
        "def test_answer():\n    assert Path('/app/answer.txt').read_text() == '42\\n'\n");
  auto names = [](const TrialReport& r) {
    std::vector<std::string> seen;
    for (const TestResult& t : r.tests) seen.push_back(t.name + " " + t.status);
    return seen;
  };
  const TrialReport oracle = trial(task, "oracle");
  EXPECT_TRUE(oracle.resolved) << to_string(oracle.failure_mode) << ": " << oracle.message;
  EXPECT_EQ(oracle.reward, 1.0);
  EXPECT_EQ(names(oracle), (std::vector<std::string>{"test_exists PASSED", "test_answer PASSED"}));
  const TrialReport nop = trial(task, "nop");
  EXPECT_EQ(nop.reward, 0.0);
  EXPECT_EQ(names(nop), (std::vector<std::string>{"test_exists FAILED", "test_answer FAILED"}));
}

// An HTTP server on every host address that answers each request with `body`, for as long as it
// lives.
class HttpAnswer {
 public:
  explicit HttpAnswer(std::string body) : body_(std::move(body)) {
    std::tie(fd_, port_) = sandbox::testing::listen_on(htonl(INADDR_ANY));
    thread_ = std::thread([this] {
      pollfd p{fd_, POLLIN, 0};
      while (!stop_) {
        if (poll(&p, 1, 50) != 1) continue;
        const int conn = accept(fd_, nullptr, nullptr);  // non-blocking: -1 when raced
        if (conn < 0) continue;
        char request[4096];
        (void)!read(conn, request, sizeof request);
        const std::string reply =
            "HTTP/1.0 200 OK\r\nContent-Length: " + std::to_string(body_.size()) + "\r\n\r\n" +
            body_;
        (void)!write(conn, reply.data(), reply.size());
        close(conn);
      }
    });
  }
  ~HttpAnswer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  std::string body_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// With an outbound network the tests run as written and reach what they fetch; offline they
// cannot, and meet the stand-ins; --stand-ins gives both; a Harbor task that says
// allow_internet = false is kept offline whatever the run says. The reward says which: 1 for
// the fetch, 2 for the stand-ins on PATH.
TEST_F(Trials, AnOutboundNetworkServesTheTestsUnlessTheTaskForbidsIt) {
  if (!sandbox::testing::tun_usable()) GTEST_SKIP() << "no tun device: slirp4netns cannot run here";
  const std::string host = sandbox::testing::host_address();
  ASSERT_FALSE(host.empty()) << "the host has no IPv4 address but its loopback";
  HttpAnswer server("warren-net\n");
  const fs::path task = harbor_task();
  write(task / "tests" / "test.sh",
        "#!/bin/bash\ncurl -s --max-time 5 http://" + host + ":" + std::to_string(server.port()) +
            "/probe > /tmp/got\ngrep -q warren-net /tmp/got && net=1 || net=0\n"
            "[ \"$(command -v uv)\" = /run/warren-offline/uv ] && stand_ins=2 || stand_ins=0\n"
            "echo $((net + stand_ins)) > /logs/verifier/reward.txt\n");
  EXPECT_EQ(trial(task, "oracle").reward, 2.0);
  const TrialReport online = trial(task, "oracle", sandbox::Network::Outbound);
  EXPECT_TRUE(online.resolved) << to_string(online.failure_mode) << ": " << online.message;
  EXPECT_EQ(online.reward, 1.0);
  EXPECT_EQ(trial(task, "oracle", sandbox::Network::Outbound, true).reward, 3.0);
  write(task / "task.toml",
        "[agent]\ntimeout_sec = 60.0\n[verifier]\ntimeout_sec = 30.0\n[environment]\n"
        "allow_internet = false\n");
  const TrialReport kept_off = trial(task, "oracle", sandbox::Network::Outbound);
  EXPECT_EQ(kept_off.reward, 2.0) << to_string(kept_off.failure_mode) << ": " << kept_off.message;
}

// A SWE-bench style instance over a local git checkout: the oracle applies the gold patch, the
// grading applies the prediction to a clean checkout, resets the test files, applies the test
// patch and requires FAIL_TO_PASS and PASS_TO_PASS.
TEST_F(Trials, ASweBenchInstanceIsGradedLikeTheHarness) {
  const fs::path repo = root / "suite" / "calc-repo";
  write(repo / "calc.py",
        "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n");
  write(repo / "tests" / "test_calc.py",
        "from calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n");
  const std::string git =
      "cd " + repo.string() +
      " && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm base"
      " && git rev-parse HEAD > ../base.txt";
  ASSERT_EQ(std::system(git.c_str()), 0);
  std::ifstream base_file(root / "suite" / "base.txt");
  std::string base;
  base_file >> base;
  const std::string patch =
      "diff --git a/calc.py b/calc.py\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n def add(a, "
      "b):\n"
      "-    return a - b\n+    return a + b\n \n \n def sub(a, b):\n";
  const std::string test_patch =
      "diff --git a/tests/test_calc.py b/tests/test_calc.py\n--- a/tests/test_calc.py\n+++ "
      "b/tests/test_calc.py\n"
      "@@ -1,4 +1,8 @@\n-from calc import sub\n+from calc import add, sub\n+\n+\n+def "
      "test_add():\n+    assert add(2, 3) == 5\n"
      " \n \n def test_sub():\n";
  Json instance = {{"instance_id", "calc__calc-1"},
                   {"repo", "calc/calc"},
                   {"repo_path", "calc-repo"},
                   {"base_commit", base},
                   {"problem_statement", "add() subtracts."},
                   {"patch", patch},
                   {"test_patch", test_patch},
                   {"FAIL_TO_PASS", "[\"tests/test_calc.py::test_add\"]"},
                   {"PASS_TO_PASS", Json::array({"tests/test_calc.py::test_sub"})}};
  write(root / "suite" / "instances.jsonl", instance.dump() + "\n");
  // The agent works on whatever the checkout holds now: a later commit must not leak into it.
  ASSERT_EQ(
      std::system(("cd " + repo.string() + " && echo 'def add(a, b):\n    return a + b' > calc.py")
                      .c_str()),
      0);

  const TrialReport oracle = trial(root / "suite" / "instances.jsonl", "oracle");
  EXPECT_TRUE(oracle.resolved) << to_string(oracle.failure_mode) << ": " << oracle.message;
  auto prediction = store->load_artifact(oracle.trial, "patch");
  ASSERT_TRUE(prediction && *prediction);
  EXPECT_NE((*prediction)->content.find("+    return a + b"), std::string::npos)
      << (*prediction)->content;

  const TrialReport nop = trial(root / "suite" / "instances.jsonl", "nop");
  EXPECT_FALSE(nop.resolved);
  EXPECT_EQ(to_string(nop.failure_mode), "test_failed");
  EXPECT_EQ(nop.message, "tests/test_calc.py::test_add FAILED");

  // The predictions file, in SWE-bench's shape: one entry per instance (here: per agent).
  auto predictions = swe_predictions(*store, run);
  ASSERT_TRUE(predictions) << predictions.error().message;
  ASSERT_EQ(predictions->size(), 2u);
  const Json& mine = (*predictions)["calc__calc-1oracle"];
  EXPECT_EQ(mine["instance_id"], "calc__calc-1oracle");
  EXPECT_NE(mine["model_patch"].get<std::string>().find("+    return a + b"), std::string::npos);
  EXPECT_EQ((*predictions)["calc__calc-1nop"]["model_patch"], "");
}

TEST_F(Trials, ATaskThatNeedsAnImageIsAnEnvironmentError) {
  const fs::path task = terminal_bench_task();
  write(task / "Dockerfile", "FROM python:3.13\nWORKDIR /app\nRUN pip install numpy\n");
  const TrialReport r = trial(task, "oracle");
  EXPECT_FALSE(r.resolved);
  EXPECT_EQ(to_string(r.failure_mode), "environment_error");
  EXPECT_EQ(r.message, "needs a prepared base image (--rootfs): RUN pip install numpy");
  EXPECT_EQ((*store->load_trial(r.trial)).status, "finished");
}

}  // namespace
}  // namespace warren::eval
