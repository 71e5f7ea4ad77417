// How a task's tests run and what they report (test_run.hpp).
#include "test_run.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "offline_tools.hpp"
#include "swe.hpp"
#include "task_files.hpp"

namespace warren::eval::detail {

namespace fs = std::filesystem;

namespace {

// A file the session's tests need, written through its file API (resolved inside the sandbox: a
// link the agent left at /tests cannot send it anywhere else).
struct SessionFile {
  std::string path, data;
  bool executable = false;
};

// The trial's copy of the tests (make_tests), as files to write at /tests, and the folders to make.
std::vector<SessionFile> test_files(const fs::path& tests, std::vector<std::string>& folders) {
  std::vector<SessionFile> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(tests, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const std::string inside = "/tests/" + fs::relative(it->path(), tests).string();
    if (it->is_directory(ec)) {
      folders.push_back(inside);
    } else if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      std::ifstream in(it->path(), std::ios::binary);
      const auto perms = it->status(ec).permissions();
      files.push_back({inside, std::string(std::istreambuf_iterator<char>(in), {}),
                       (perms & fs::perms::owner_exec) != fs::perms::none});
    }
  }
  return files;
}

}  // namespace

// What runs the tests: the task's own script, as its harness runs it. Its network steps (installing
// uv, a pinned pytest) meet the offline stand-ins (install_offline_tools).
std::string grading_command(const Task& task) {
  if (task.format == TaskFormat::SweBench) return swe_grading_command(task);
  // The reward is read from /logs/verifier (a host folder) once the sandbox has ended, never from
  // the output, which the program under test writes too (read_reward).
  if (task.format == TaskFormat::Harbor)
    return "mkdir -p /logs/agent /logs/artifacts; bash /tests/test.sh > "
           "/logs/verifier/test-stdout.txt 2>&1; status=$?; cat /logs/verifier/test-stdout.txt; "
           "exit $status";
  return "export TEST_DIR=/tests; bash /tests/run-tests.sh";
}

// The environment the stand-ins need: first on PATH, pip set to find nothing to fetch, and the
// --ctrf plugin loaded into pytest from their folder. PATH and PYTHONPATH keep what `env` (the
// image's ENV) gives them, after the stand-ins' folder.
void set_offline_env(std::vector<std::string>& env) {
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", python_path;
  for (auto it = env.begin(); it != env.end();)
    if (it->starts_with("PATH=") || it->starts_with("PYTHONPATH=")) {
      (it->starts_with("PATH=") ? path : python_path) = it->substr(it->find('=') + 1);
      it = env.erase(it);
    } else {
      ++it;
    }
  env.push_back(std::string("PATH=") + kOfflineBin + ":" + path);
  env.push_back(std::string("PYTHONPATH=") + kOfflineBin + (python_path.empty() ? "" : ":") +
                python_path);
  for (const char* kv : {"PIP_NO_INDEX=1", "PIP_BREAK_SYSTEM_PACKAGES=1", "UV_OFFLINE=1",
                         "PYTEST_PLUGINS=warren_ctrf"})
    env.push_back(kv);
}

// The stand-ins for test scripts' network steps (configs/offline/warren-offline), written into
// the trial's folder under each name they stand in for, to be mounted read-only at kOfflineBin;
// the grading environment gets them first on PATH, and pip set to find nothing to fetch.
sandbox::Result<void> install_offline_tools(const fs::path& trial_dir, sandbox::Policy& grading) {
  const fs::path bin = trial_dir / "offline";
  std::error_code ec;
  fs::create_directories(bin, ec);
  {
    std::ofstream script(bin / "warren-offline");
    script << kOfflineTools;
    if (!script) return tl::unexpected(sandbox::Error{"cannot write " + bin.string()});
  }
  fs::permissions(bin / "warren-offline", fs::perms::owner_all | fs::perms::group_read |
                                              fs::perms::group_exec | fs::perms::others_read |
                                              fs::perms::others_exec);
  std::ofstream(bin / "warren_ctrf.py") << kOfflineCtrfPlugin;
  for (const char* name : {"uv", "uvx", "pip", "pip3", "curl"})
    fs::create_symlink("warren-offline", bin / name, ec);
  if (ec)
    return tl::unexpected(sandbox::Error{"cannot write " + bin.string() + ": " + ec.message()});
  grading.mounts.push_back({bin.string(), kOfflineBin, true});
  set_offline_env(grading.env);
  return {};
}

// Harbor's reward: reward.json's "reward" (or its only number), else reward.txt's number, read
// from the verifier's folder after the grading sandbox has ended: every process that could write
// there is gone, and what the verifier wrote last is what counts. The folder is the sandbox's, so
// it is read as untrusted data (regular files only, nothing followed out of it).
std::optional<double> read_reward(const fs::path& verifier_dir) {
  auto folder = TaskFolder::open(verifier_dir.string());
  if (!folder) return std::nullopt;
  if (auto json_text = folder->read("reward.json", "the reward", 1 << 20)) {
    if (auto parsed = toolcall::parse_json(*json_text); parsed && parsed->is_object()) {
      if (parsed->contains("reward") && (*parsed)["reward"].is_number())
        return (*parsed)["reward"].get<double>();
      for (const auto& [key, value] : parsed->items())
        if (value.is_number()) return value.get<double>();
    }
  }
  auto txt_text = folder->read("reward.txt", "the reward", 1 << 20);
  if (!txt_text) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(txt_text->c_str(), &end);
  if (end == txt_text->c_str()) return std::nullopt;
  return value;
}

// The tests' report, read from the results folder after the grading sandbox has ended, as
// untrusted data (read_reward says why): pytest's junit.xml, else the CTRF report a Harbor
// verifier leaves (`pytest --ctrf /logs/verifier/ctrf.json`).
std::optional<std::vector<TestResult>> read_test_report(const fs::path& results_dir) {
  auto folder = TaskFolder::open(results_dir.string());
  if (!folder) return std::nullopt;
  constexpr std::uint64_t kMaxReport = std::uint64_t{64} << 20;
  if (auto xml = folder->read("junit.xml", "the test report", kMaxReport))
    return parse_junit_report(*xml);
  if (auto json = folder->read("ctrf.json", "the test report", kMaxReport))
    return parse_ctrf_report(*json);
  return std::nullopt;
}

// Terminal-Bench and Harbor tasks on an image: the tests run in the agent's own sandbox once the
// agent has ended, as those harnesses run them in the agent's container, so that what the agent
// started (a server) is still up. The tests go in only now, through the file API. What they
// report is read afterwards from the root on the host, beneath it, into the verifier folder
// judge() reads. nullopt when the agent's session has ended: then a fresh sandbox on the same
// root grades.
boost::asio::awaitable<std::optional<Grading>> run_tests_in_session(
    const Task& task, const fs::path& tests, const sandbox::Policy& policy,
    std::chrono::milliseconds timeout, sandbox::Session& session, bool stand_ins) {
  if (!session.alive()) co_return std::nullopt;
  Grading graded;
  const bool offline = stand_ins;
  std::vector<std::string> folders = {"/tests", "/logs/verifier", "/logs/agent", "/logs/artifacts",
                                      "/logs/warren"};
  if (offline) folders.push_back(kOfflineBin);
  std::vector<SessionFile> files = test_files(tests, folders);
  if (offline) {  // a copy under each name: the script goes by the name it is run as
    for (const char* name : {"warren-offline", "uv", "uvx", "pip", "pip3", "curl"})
      files.push_back({std::string(kOfflineBin) + "/" + name, kOfflineTools, true});
    files.push_back({std::string(kOfflineBin) + "/warren_ctrf.py", kOfflineCtrfPlugin, false});
  }
  // What the agent left where the tests and their results go is removed first, by a command in
  // the sandbox (what it is, links included, is the sandbox's business). Most agents leave nothing
  // there, and then no command is run: the folders are made through the file API.
  const std::vector<std::string> cleared = {"/tests", "/logs/verifier", "/logs/warren",
                                            kOfflineBin};
  if (std::any_of(cleared.begin(), cleared.end(),
                  [&](const std::string& path) { return session.stat(path).has_value(); })) {
    std::string setup = "rm -rf";
    for (const std::string& path : cleared) setup += " " + path;
    auto removed = co_await session.async_exec(std::move(setup));
    if (!removed || removed->exit_code != 0) co_return std::nullopt;
  }
  for (const std::string& folder : folders)
    if (auto made = session.make_directories(folder); !made) {
      graded.problem = "putting the tests in: " + made.error().message;
      co_return graded;
    }
  for (const SessionFile& f : files)
    if (auto written = session.write_file(f.path, f.data, f.executable ? 0755 : 0644); !written) {
      graded.problem = "putting the tests in: " + written.error().message;
      co_return graded;
    }
  std::vector<std::string> env;
  for (const std::string& kv : policy.env)
    if (kv.starts_with("PATH=") || kv.starts_with("PYTHONPATH=")) env.push_back(kv);
  if (offline) set_offline_env(env);
  std::string command = "cd " + orchestrator::shell_quote(policy.workspace_path) +
                        " && (export PYTEST_ADDOPTS='--junitxml=" + kReportDir +
                        "/junit.xml -o junit_family=xunit1'";
  for (const std::string& kv : env) command += " " + orchestrator::shell_quote(kv);
  command += "; " + grading_command(task) + ")";
  auto ran = co_await session.async_exec(std::move(command), timeout);
  if (!ran) co_return std::nullopt;
  graded.result = std::move(*ran);
  co_return graded;
}

std::optional<std::string> read_test_log(const fs::path& results_dir) {
  auto folder = TaskFolder::open(results_dir.string());
  if (!folder) return std::nullopt;
  auto log = folder->read("test_output.txt", "the test log", std::uint64_t{64} << 20);
  if (!log) return std::nullopt;
  return std::move(*log);
}

// Copies what the tests reported, from the trial's root (read beneath it, as data) into the
// verifier folder on the host, once every process of the sandbox has ended.
void collect_reports(const Task& task, const fs::path& root_dir, const fs::path& verifier_dir) {
  auto root = TaskFolder::open(root_dir.string());
  if (!root) return;
  const std::string from = task.format == TaskFormat::Harbor ? "logs/verifier" : "logs/warren";
  for (const char* name :
       {"reward.json", "reward.txt", "junit.xml", "ctrf.json", "test-stdout.txt"})
    if (auto text = root->read(from + "/" + name, "the test report", std::uint64_t{64} << 20))
      std::ofstream(verifier_dir / name, std::ios::binary) << *text;
}

}  // namespace warren::eval::detail
