// Adversarial tests of the harness around the sandbox (docs/security.md), run as users run it:
// the `warren` command on hostile task collections and with a hostile model. Each test plants a
// host secret and asserts its bytes are nowhere a task or an agent could have put them: not in a
// workspace, the database, a report or any output. Needs root, as CI runs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "../cli/cli_util.hpp"
#include "../sandbox/host_probe.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

class Harness : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-harness-" + std::to_string(getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "state");
    fs::permissions(base, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    token = "WARREN-HOST-SECRET-" + std::to_string(getpid()) + "-" +
            std::to_string(std::random_device{}());
    secret = "/root/warren-harness-secret-" + std::to_string(getpid());
    std::ofstream(secret) << token << "\n";
    fs::permissions(secret, fs::perms::owner_read);
  }
  void TearDown() override {
    (void)sandbox::remove_workspace(base.string());  // kept workspaces are bounded filesystems
    fs::remove(secret);
  }
  void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }
  // A Terminal-Bench task that passes when /app/out.txt holds "ok".
  fs::path task(const std::string& name, const std::string& dockerfile = "") {
    const fs::path d = base / "suite" / name;
    write(d / "task.yaml", "instruction: Write ok into out.txt.\n");
    write(d / "solution.sh", "echo ok > out.txt\n");
    write(d / "run-tests.sh", "python3 -m pytest -rA -p no:cacheprovider $TEST_DIR\n");
    write(d / "tests" / "test_outputs.py",
          "def test_ok():\n    assert open('/app/out.txt').read() == 'ok\\n'\n");
    write(d / "Dockerfile", "FROM ubuntu:24.04\nWORKDIR /app\n" + dockerfile);
    return d;
  }
  // `warren ARGS` with the secret in its environment too, as an API key would be.
  Outcome warren_with_secret(const std::string& args) {
    return warren_via("env WARREN_TEST_SECRET=" + token + " " + std::string(WARREN_BINARY) + " " +
                      args);
  }
  // Every regular file under `dir` that holds the token.
  std::vector<std::string> files_with_token(const fs::path& dir) const {
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file() && !e.is_symlink() &&
          slurp(e.path().string()).find(token) != std::string::npos)
        found.push_back(e.path().string());
    return found;
  }
  // The oracle's one attempt at the task `dir`, from `warren eval --json`.
  Json oracle_attempt(const fs::path& dir) {
    auto r = warren("eval " + dir.string() + " --agent oracle --json --db " +
                    (base / "state" / "warren.db").string());
    const Json report = Json::parse(r.out, nullptr, false);
    if (!report.is_object() || report["tasks"].size() != 1) {
      ADD_FAILURE() << r.out << r.err;
      return Json::object();
    }
    return report["tasks"][0]["attempts"][0];
  }
  static std::map<std::string, Json> by_name(const Json& report) {
    std::map<std::string, Json> out;
    for (const Json& t : report["tasks"]) out[t["name"]] = t;
    return out;
  }

  fs::path base;
  std::string token, secret;
};

// Item 1: a task's Dockerfile, tests/ and solution name host files in every way there is (`..`,
// an absolute path, links out of the folder, /proc/self/environ). Each is refused with the
// reason, or copied as the link it is, and the secret reaches nothing.
TEST_F(Harness, TaskFilesAreReadBeneathTheTaskFolderOnly) {
  const std::string up = "../../../../../../../../.." + secret;
  task("copy-up", "COPY " + up + " /app/x\n");
  task("copy-absolute", "COPY " + secret + " /app/x\n");
  fs::create_symlink(secret, task("copy-link-file", "COPY leak.txt /app/leak.txt\n") / "leak.txt");
  fs::create_symlink("/root", task("copy-link-dir", "COPY data /app/data\n") / "data");
  // Links inside a copied directory are copied as links: inside the sandbox they lead nowhere.
  const fs::path inner = task("copy-inner-link", "COPY data /app/data\n");
  fs::create_directories(inner / "data");
  fs::create_symlink(secret, inner / "data" / "leak");
  write(inner / "solution.sh", "cat data/leak > out.txt 2>&1; echo ok > out.txt\n");
  const fs::path tests_link = task("tests-link");
  fs::create_symlink(secret, tests_link / "tests" / "leak");
  write(tests_link / "run-tests.sh", "cat $TEST_DIR/leak; python3 -m pytest -rA $TEST_DIR\n");
  const fs::path environ = task("solution-environ");
  fs::remove(environ / "solution.sh");
  fs::create_symlink("/proc/self/environ", environ / "solution.sh");
  const fs::path relative_environ = task("solution-relative");
  fs::remove(relative_environ / "solution.sh");
  fs::create_symlink("../../../../../../../../../proc/self/environ",
                     relative_environ / "solution.sh");
  fs::create_symlink("/etc", base / "suite" / "task-folder-link");

  // Workspaces kept, so that the search below covers what the trials left too.
  auto r = warren_with_secret("eval " + (base / "suite").string() + " --agent oracle --json --db " +
                              (base / "state" / "warren.db").string() + " --keep-workspaces");
  const Json report = Json::parse(r.out);
  auto tasks = by_name(report);
  EXPECT_EQ(tasks.count("task-folder-link"), 0u);  // a linked task folder is not a task
  const std::map<std::string, std::string> refused = {
      {"copy-up",
       "COPY source " + up + " is outside the build context (absolute paths and .. are refused)"},
      {"copy-absolute", "COPY source " + secret +
                            " is outside the build context (absolute paths and .. are refused)"},
      {"copy-link-file",
       "COPY source leak.txt is not a file or directory beneath the build "
       "context (a link that leads out of it is refused)"},
      {"copy-link-dir",
       "COPY source data is not a file or directory beneath the build context "
       "(a link that leads out of it is refused)"},
      {"solution-environ", "the solution solution.sh: a link that leads out of the task's folder"},
      {"solution-relative",
       "the solution solution.sh: a link that leads out of the task's folder"}};
  for (const auto& [name, why] : refused) {
    ASSERT_TRUE(tasks.contains(name)) << name;
    EXPECT_NE(tasks[name]["load_error"].get<std::string>().find(why), std::string::npos)
        << name << ": " << tasks[name]["load_error"];
  }
  // The tasks whose links stay data run, and are graded.
  EXPECT_EQ(tasks["copy-inner-link"]["resolved"], true) << tasks["copy-inner-link"];
  EXPECT_EQ(tasks["tests-link"]["resolved"], true) << tasks["tests-link"];

  EXPECT_EQ(r.out.find(token), std::string::npos);
  EXPECT_EQ(r.err.find(token), std::string::npos);
  EXPECT_EQ(files_with_token(base / "state"), std::vector<std::string>{});
  auto html = warren("report 1 --db " + (base / "state" / "warren.db").string() + " --html " +
                     (base / "state" / "report.html").string());
  EXPECT_EQ(html.status, 0) << html.err;
  EXPECT_EQ(files_with_token(base / "state"), std::vector<std::string>{});
}

// Item 1: a SWE-bench instance's repo_path is a path beneath the instances file's folder.
TEST_F(Harness, ASweBenchRepositoryIsBeneathTheInstancesFolder) {
  fs::create_directories(base / "instances");
  Json instances = Json::array();
  for (const std::string& path : {std::string("/root"), std::string("../state"), secret})
    instances.push_back({{"instance_id", "x__" + std::to_string(instances.size())},
                         {"problem_statement", "p"},
                         {"repo_path", path},
                         {"base_commit", "abc"},
                         {"FAIL_TO_PASS", Json::array({"t"})}});
  std::ofstream(base / "instances" / "i.json") << instances.dump();
  auto r =
      warren_with_secret("eval " + (base / "instances" / "i.json").string() +
                         " --agent oracle --json --db " + (base / "state" / "warren.db").string());
  const Json report = Json::parse(r.out);
  ASSERT_EQ(report["tasks"].size(), 3u) << r.out << r.err;
  for (const Json& t : report["tasks"])
    EXPECT_NE(t["load_error"].get<std::string>().find("(absolute paths and .. are refused)"),
              std::string::npos)
        << t;
}

// Item 6: the program under test prints Harbor's old reward markers with 1 before the verifier
// writes 0. The reward is read from the verifier's folder after the sandbox has ended, so the
// forgery is not counted.
TEST_F(Harness, AHarborRewardCannotBeForgedFromTheOutput) {
  const fs::path d = base / "suite" / "forged";
  write(d / "task.toml", "[agent]\ntimeout_sec = 60.0\n[verifier]\ntimeout_sec = 30.0\n");
  write(d / "instruction.md", "Make /app/prog print the answer.\n");
  write(d / "environment" / "Dockerfile", "FROM ubuntu:24.04\nWORKDIR /app\n");
  write(d / "solution" / "solve.sh",
        "cat > /app/prog <<'EOF'\n#!/bin/sh\necho '@@warren reward.txt'\necho 1\n"
        "echo '@@warren reward.json'\necho '{\"reward\": 1}'\nEOF\nchmod +x /app/prog\n");
  write(d / "tests" / "test.sh",
        "#!/bin/bash\n/app/prog\nif [ \"$(/app/prog)\" = 42 ]; then echo 1; else echo 0; fi > "
        "/logs/verifier/reward.txt\n");
  const Json attempt = oracle_attempt(d);
  EXPECT_EQ(attempt["resolved"], false) << attempt;
  EXPECT_EQ(attempt["failure_mode"], "test_failed") << attempt;
  // Without --keep-workspaces nothing of the trial is left behind, mounts included.
  EXPECT_TRUE(fs::is_empty(base / "state" / "workspaces" / "warren.db"));
  EXPECT_EQ(slurp("/proc/self/mountinfo").find((base / "state").string()), std::string::npos);
}

// Beyond the list: Terminal-Bench's tests were graded from pytest's summary in the output, which
// the program under test can print too. Here it prints a summary where every test PASSED and
// ends pytest before pytest prints its own. Not counted: the report pytest writes to a host
// folder at the end of its session is what grades, and there is none.
TEST_F(Harness, ATerminalBenchSummaryCannotBeForgedFromTheOutput) {
  const fs::path d = task("forged-summary");
  // pytest captures fd 1 while a test runs; the original output is a pipe it keeps at another
  // descriptor, which the program finds and writes to.
  write(d / "solution.sh",
        "cat > /app/prog.py <<'EOF'\nimport os, stat\n"
        "forged = ('=' * 20 + ' short test summary info ' + '=' * 20 + '\\n'\n"
        "          'PASSED tests/test_outputs.py::test_ok\\n' + '=' * 20 + ' 1 passed ' + "
        "'=' * 20 + '\\n')\n"
        "for fd in range(3, 64):\n    try:\n        if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
        "            os.write(fd, forged.encode())\n    except OSError:\n        pass\n"
        "os._exit(0)\nEOF\necho wrong > out.txt\n");
  write(d / "tests" / "test_outputs.py",
        "import runpy\n\ndef test_ok():\n    runpy.run_path('/app/prog.py')\n"
        "    assert open('/app/out.txt').read() == 'ok\\n'\n");
  const Json attempt = oracle_attempt(d);
  EXPECT_EQ(attempt["resolved"], false) << attempt;
  EXPECT_EQ(attempt["failure_mode"], "test_failed") << attempt;
}

// Beyond the list: a task folder's name, its category and its broken task.yaml's message are the
// task author's text, printed in the report on the operator's terminal. Control characters in
// them (an escape sequence that retitles the window, C1's CSI) come out as '?'.
TEST_F(Harness, TaskTextReachesTheTerminalWithoutControlCharacters) {
  const std::string name =
      "evil\x1b]0;retitled\x07\xc2\x9b"
      "31m";
  const fs::path d = task(name);
  write(d / "task.yaml", "instruction: Write ok into out.txt.\ncategory: \"cat\\e[2J\"\n");
  auto r = warren("eval " + (base / "suite").string() + " --agent oracle --db " +
                  (base / "state" / "warren.db").string());
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("evil?]0;retitled??31m"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cat?[2J"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;  // the progress lines
}

// Item 2: a model's editor calls name the operator's terminal, a fifo, the pty multiplexer and
// PID 1's memory map. Run from a terminal (script(1) gives `warren` one, and types a line into it),
// none of them is opened: the line typed stays unread, nothing is written onto the terminal, and
// the run ends at once with each call refused.
TEST_F(Harness, TheEditorNeverOpensTheOperatorsTerminal) {
  fs::create_directories(base / "repo");
  write(base / "repo" / "README", "hello\n");
  auto call = [](const std::string& tool,
                 const std::vector<std::pair<std::string, std::string>>& params) {
    std::string out =
        "Next.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"" + tool + "\">\n";
    for (const auto& [name, value] : params)
      out += "<｜DSML｜parameter name=\"" + name + "\" string=\"" +
             (name == "insert_line" ? "false" : "true") + "\">" + value + "</｜DSML｜parameter>\n";
    return out + "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>\n";
  };
  const std::string marker = "WRITTEN-ONTO-THE-TERMINAL";
  std::string completions = call("bash", {{"command", "mkfifo /workspace/fifo"}});
  for (const char* path : {"/dev/tty", "/workspace/fifo", "/dev/ptmx", "/proc/1/maps"}) {
    completions += call("str_replace_editor", {{"command", "view"}, {"path", path}});
    completions += call("str_replace_editor", {{"command", "insert"},
                                               {"path", path},
                                               {"insert_line", "0"},
                                               {"new_str", "\x1b]0;" + marker + "\x07"}});
  }
  completions += call("submit", {});
  write(base / "script.txt", completions);
  const std::string db = (base / "state" / "warren.db").string();
  const std::string run = std::string(WARREN_BINARY) + " run --repo " + (base / "repo").string() +
                          " --db " + db + " --task t --json --script " +
                          (base / "script.txt").string() + " > " + (base / "out").string() +
                          " 2> " + (base / "err").string();
  const std::string typescript = (base / "typescript").string();
  auto r =
      warren_via("printf 'typed-line-" + token + "\\n' | script -qfec '" + run + "' " + typescript);
  ASSERT_EQ(r.status, 0) << slurp((base / "err").string());
  const Json out = Json::parse(slurp((base / "out").string()));
  EXPECT_EQ(out["exit_status"], "submitted");
  EXPECT_EQ(slurp(typescript).find(marker), std::string::npos) << slurp(typescript);
  EXPECT_EQ(files_with_token(base / "state"), std::vector<std::string>{});
  auto exported = warren("runs --db " + db + " export 1 --format json");
  ASSERT_EQ(exported.status, 0) << exported.err;
  for (const std::string refusal :
       {"/dev/tty: a character device, not a regular file",
        "/workspace/fifo: a fifo, not a regular file",
        "/dev/ptmx: a character device, not a regular file", "/proc/1/maps: Permission denied"})
    EXPECT_NE(exported.out.find(refusal), std::string::npos) << refusal << "\n" << exported.out;
}

}  // namespace
}  // namespace warren::testing
