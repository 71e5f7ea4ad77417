// Loading task suites: Terminal-Bench task directories (task.yaml, yaml-cpp) and Harbor task
// directories (task.toml, toml++). A task that cannot be read keeps its name and the reason, so
// that one bad task never stops a suite.
#include <yaml-cpp/yaml.h>

#include <toml++/toml.h>
#include <algorithm>
#include <filesystem>

#include "compose.hpp"
#include "swe.hpp"
#include "task_files.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

namespace fs = std::filesystem;

std::chrono::seconds seconds_of(double value) {
  return std::chrono::seconds(static_cast<std::int64_t>(value + 0.999));
}

// solution.yaml's steps as shell: Terminal-Bench types each command into the terminal, one after
// another whatever the last one's exit status was; blocking or not, here each runs to its end in
// turn.
Result<std::string> script_from_steps(const std::string& text, const std::string& file) {
  YAML::Node steps = YAML::Load(text);
  if (!steps.IsSequence()) return tl::unexpected(Error{file + ": not a list of steps"});
  std::string script;
  for (const YAML::Node& step : steps) {
    if (!step["command"]) return tl::unexpected(Error{file + ": a step without a command"});
    script += step["command"].as<std::string>() + "\n";
  }
  return script;
}

// task.yaml's instruction, or the `base` entry of the older `descriptions` list.
std::string instruction_of(const YAML::Node& yaml) {
  if (yaml["instruction"]) return yaml["instruction"].as<std::string>();
  if (const YAML::Node list = yaml["descriptions"]; list && list.IsSequence())
    for (const YAML::Node& d : list)
      if (d["key"] && d["key"].as<std::string>() == "base")
        return d["description"]   ? d["description"].as<std::string>()
               : d["instruction"] ? d["instruction"].as<std::string>()
                                  : "";
  return "";
}

// The text of `relative` in the task's folder, or the exception that makes the task a broken one.
std::string text_of(const detail::TaskFolder& folder, const std::string& relative,
                    const std::string& what) {
  auto text = folder.read(relative, what);
  if (!text) throw std::runtime_error(text.error().message);
  return *text;
}

bool is_file(const detail::TaskFolder& folder, const std::string& relative) {
  return folder.entry(relative) == detail::TaskEntry::File;
}

// A task's environment: its Dockerfile (`dir`/Dockerfile, or the one the docker-compose.yaml
// beside it builds the agent's service from: Terminal-Bench's `build: {context: client}`), and the
// compose file's other services. No Dockerfile: the host's system view.
Environment environment_of(const Task& t, const detail::TaskFolder& folder, const std::string& dir,
                           const std::string& agent_service) {
  detail::Compose compose = detail::read_compose(folder, dir, agent_service);
  std::string dockerfile = (dir.empty() ? "" : dir + "/") + "Dockerfile", context = dir;
  if (!compose.file.empty()) std::tie(dockerfile, context) = {compose.dockerfile, compose.context};
  if (folder.entry(dockerfile) == detail::TaskEntry::Missing) {
    if (!compose.services.empty())
      throw std::runtime_error(compose.file + ": the agent's service " + compose.agent_service +
                               " has no Dockerfile (" + dockerfile + ")");
    return {};
  }
  auto environment = read_dockerfile(t.dir, dockerfile, context);
  if (!environment) throw std::runtime_error(environment.error().message);
  for (std::string& kv : compose.agent_env) environment->env.push_back(std::move(kv));
  environment->services = std::move(compose.services);
  environment->service_name = compose.agent_service;
  return std::move(*environment);
}

void load_terminal_bench(Task& t, const detail::TaskFolder& folder) {
  const fs::path dir = t.dir;
  YAML::Node yaml = YAML::Load(text_of(folder, "task.yaml", "the task"));
  t.instruction = instruction_of(yaml);
  if (t.instruction.empty()) throw std::runtime_error("task.yaml has no instruction");
  t.category = yaml["category"] ? yaml["category"].as<std::string>() : "software_engineering";
  t.difficulty = yaml["difficulty"] ? yaml["difficulty"].as<std::string>() : "unknown";
  if (yaml["tags"] && yaml["tags"].IsSequence())
    for (const YAML::Node& tag : yaml["tags"]) t.tags.push_back(tag.as<std::string>());
  t.agent_timeout = seconds_of(
      yaml["max_agent_timeout_sec"] ? yaml["max_agent_timeout_sec"].as<double>() : 360.0);
  t.test_timeout =
      seconds_of(yaml["max_test_timeout_sec"] ? yaml["max_test_timeout_sec"].as<double>() : 60.0);
  const std::string parser = yaml["parser_name"] ? yaml["parser_name"].as<std::string>() : "pytest";
  if (parser != "pytest")
    throw std::runtime_error("parser_name " + parser + " is not supported (pytest is)");

  if (folder.entry("solution.sh") != detail::TaskEntry::Missing) {  // wins over solution.yaml
    t.solution = text_of(folder, "solution.sh", "the solution");
  } else if (folder.entry("solution.yaml") != detail::TaskEntry::Missing) {
    auto script = script_from_steps(text_of(folder, "solution.yaml", "the solution"),
                                    (dir / "solution.yaml").string());
    if (!script) throw std::runtime_error(script.error().message);
    t.solution = *script;
  } else {
    throw std::runtime_error("no solution.sh or solution.yaml");
  }
  if (!is_file(folder, "run-tests.sh")) throw std::runtime_error("no run-tests.sh");
  t.test_script = (dir / "run-tests.sh").string();
  // Tests may live inline in run-tests.sh, with no tests/ folder beside it.
  if (folder.entry("tests") == detail::TaskEntry::Directory) t.tests_dir = (dir / "tests").string();
  t.environment = environment_of(t, folder, "", "client");
}

void load_harbor(Task& t, const detail::TaskFolder& folder) {
  const fs::path dir = t.dir;
  const toml::table config = toml::parse(text_of(folder, "task.toml", "the task"));
  if (folder.entry("instruction.md") == detail::TaskEntry::Missing)
    throw std::runtime_error("no instruction.md");
  t.instruction = text_of(folder, "instruction.md", "the instruction");
  t.category = config["metadata"]["category"].value_or(std::string("software_engineering"));
  t.difficulty = config["metadata"]["difficulty"].value_or(std::string("unknown"));
  if (const toml::array* tags = config["metadata"]["tags"].as_array())
    for (const auto& tag : *tags)
      if (auto s = tag.value<std::string>()) t.tags.push_back(*s);
  t.agent_timeout = seconds_of(config["agent"]["timeout_sec"].value_or(600.0));
  t.test_timeout = seconds_of(config["verifier"]["timeout_sec"].value_or(600.0));
  if (!is_file(folder, "tests/test.sh")) throw std::runtime_error("no tests/test.sh");
  t.tests_dir = (dir / "tests").string();
  t.test_script = (dir / "tests" / "test.sh").string();
  // Optional: the nop and model agents run without it; the oracle cannot (make_agent says so).
  if (folder.entry("solution/solve.sh") != detail::TaskEntry::Missing)
    t.solution = text_of(folder, "solution/solve.sh", "the solution");
  t.environment = environment_of(t, folder, "environment", "main");
  // Harbor's default is true: only a task that says false is kept off the network.
  t.environment.allows_internet = config["environment"]["allow_internet"].value_or(true);
  if (const toml::table* env = config["environment"]["env"].as_table())
    for (const auto& [key, value] : *env)
      if (auto s = value.value<std::string>())
        t.environment.env.push_back(std::string(key.str()) + "=" + *s);
}

// FAIL_TO_PASS and PASS_TO_PASS: a list, or (as SWE-bench's datasets store them) a JSON string
// holding one.
std::vector<std::string> test_ids(const Json& instance, const char* key) {
  Json value = instance.value(key, Json::array());
  if (value.is_string()) {
    auto parsed = toolcall::parse_json(value.get<std::string>());
    value = parsed ? *parsed : Json::array();
  }
  std::vector<std::string> ids;
  if (value.is_array())
    for (const Json& id : value)
      if (id.is_string()) ids.push_back(id.get<std::string>());
  return ids;
}

// An instance without a local checkout runs on its image, as SWE-bench's harness runs it: the
// official one its id names unless it names another ("image"), graded with the harness's test
// command, log parser and steps for its repository and version (each may be given instead:
// "test_command", "log_parser", "install"). Says what is wrong, or "".
std::string swe_image_setup(const Json& instance, Task& t) {
  Task::Swe& s = t.swe;
  if (instance.contains("version"))
    s.version = instance["version"].is_string() ? instance["version"].get<std::string>()
                                                : instance["version"].dump();
  if (!instance.contains("instance_id") && !instance.contains("image"))
    return "no instance_id (which names the instance's image) and no image";
  t.environment.image_name = instance.value("image", detail::swe_image_name(t.name));
  // A repository the harness does not know is run as most of its are: pytest -rA.
  const detail::SweSpec spec =
      detail::swe_spec(s.repo, s.version).value_or(detail::SweSpec{"pytest -rA"});
  s.test_command = instance.value("test_command", spec.test_command);
  s.log_parser = spec.log_parser;
  s.eval_commands = spec.eval_commands;
  s.install = instance.value("install", spec.install);
  if (instance.contains("log_parser")) {
    const std::string name = instance.value("log_parser", "");
    const auto parser = detail::swe_log_parser_named(name);
    if (!parser)
      return "unknown log_parser '" + name +
             "' (pytest, pytest_options, pytest_v2, django, sympy, seaborn or matplotlib)";
    s.log_parser = *parser;
  }
  return "";
}

Task swe_task_of(const Json& instance, const fs::path& base, std::size_t index);

// An instance with a field of the wrong type (a number where a string goes) is a broken task, not
// a stopped suite.
Task swe_task(const Json& instance, const fs::path& base, std::size_t index) {
  try {
    return swe_task_of(instance, base, index);
  } catch (const Json::exception& e) {
    Task broken = swe_task_of(Json(), base, index);
    if (instance.is_object() && instance.contains("instance_id") &&
        instance["instance_id"].is_string())
      broken.name = instance["instance_id"].get<std::string>();
    broken.load_error = std::string("a field of the wrong type (") + e.what() + ")";
    return broken;
  }
}

Task swe_task_of(const Json& instance, const fs::path& base, std::size_t index) {
  Task t;
  t.format = TaskFormat::SweBench;
  t.name = instance.is_object() ? instance.value("instance_id", "") : "";
  if (t.name.empty()) t.name = "instance-" + std::to_string(index + 1);
  t.dir = base.string();
  if (!instance.is_object()) {
    t.load_error = "not a JSON object";
    return t;
  }
  t.instruction = instance.value("problem_statement", "");
  t.category = instance.value("repo", "swe");
  t.difficulty = instance.value("difficulty", "unknown");
  t.agent_timeout = std::chrono::seconds(instance.value("agent_timeout_sec", 1800));
  t.test_timeout = std::chrono::seconds(instance.value("test_timeout_sec", 600));
  t.environment.workdir = instance.value("workdir", "/testbed");
  Task::Swe& s = t.swe;
  s.repo = instance.value("repo", "");
  const std::string path = instance.value("repo_path", "");
  s.repo_root = base.string();
  s.repo_relative = path;
  s.repo_path = path.empty() ? "" : (base / path).lexically_normal().string();
  s.base_commit = instance.value("base_commit", "");
  s.patch = instance.value("patch", "");
  s.test_patch = instance.value("test_patch", "");
  s.fail_to_pass = test_ids(instance, "FAIL_TO_PASS");
  s.pass_to_pass = test_ids(instance, "PASS_TO_PASS");
  t.solution = s.patch;
  if (t.instruction.empty())
    t.load_error = "no problem_statement";
  else if (s.base_commit.empty())
    t.load_error = "no base_commit";
  else if (s.fail_to_pass.empty())
    t.load_error = "no FAIL_TO_PASS tests";
  if (path.empty()) {
    if (std::string problem = swe_image_setup(instance, t); t.load_error.empty())
      t.load_error = problem;
    return t;
  }
  s.test_command = instance.value("test_command", "python3 -m pytest -rA -p no:cacheprovider");
  if (!t.load_error.empty()) return t;
  const auto folder = detail::TaskFolder::open(base.string());
  if (!detail::plainly_beneath(path))
    t.load_error = "repo_path " + path + " is outside " + base.string() +
                   ", the folder of the instances (absolute paths and .. are refused)";
  else if (!folder || folder->entry(path + "/.git") != detail::TaskEntry::Directory)
    t.load_error = "repo_path " + s.repo_path + " is not a git checkout";
  return t;
}

// A .json file (one instance or a list) or a .jsonl file (one instance per line).
Result<std::vector<Task>> load_swe_file(const fs::path& file) {
  auto text = orchestrator::read_text_file(file.string(), "the instances");
  if (!text) return tl::unexpected(text.error());
  const fs::path base = fs::absolute(file).parent_path();
  std::vector<Task> tasks;
  if (file.extension() == ".jsonl") {
    std::size_t start = 0, line = 0;
    while (start < text->size()) {
      std::size_t end = text->find('\n', start);
      if (end == std::string::npos) end = text->size();
      const std::string row = text->substr(start, end - start);
      start = end + 1;
      if (row.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto instance = toolcall::parse_json(row);
      if (instance) {
        tasks.push_back(swe_task(*instance, base, line));
      } else {
        Task broken = swe_task(Json(), base, line);
        broken.load_error =
            file.string() + " line " + std::to_string(line + 1) + ": " + instance.error().message;
        tasks.push_back(std::move(broken));
      }
      ++line;
    }
  } else {
    auto json = toolcall::parse_json(*text);
    if (!json) return tl::unexpected(Error{file.string() + ": " + json.error().message});
    const Json list = json->is_array() ? *json : Json::array({*json});
    for (std::size_t i = 0; i < list.size(); ++i) tasks.push_back(swe_task(list[i], base, i));
  }
  if (tasks.empty()) return tl::unexpected(Error{"no instances in " + file.string()});
  return tasks;
}

bool is_task_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::symlink_status(dir / "task.yaml", ec).type() != fs::file_type::not_found ||
         fs::symlink_status(dir / "task.toml", ec).type() != fs::file_type::not_found;
}

Task load_task(const fs::path& dir) {
  Task t;
  t.name = dir.filename().string();
  t.dir = fs::absolute(dir).lexically_normal().string();
  std::error_code ec;
  t.format = fs::symlink_status(dir / "task.toml", ec).type() != fs::file_type::not_found
                 ? TaskFormat::Harbor
                 : TaskFormat::TerminalBench;
  auto folder = detail::TaskFolder::open(t.dir);
  if (!folder) {
    t.load_error = folder.error().message;
    return t;
  }
  try {
    if (t.format == TaskFormat::Harbor)
      load_harbor(t, *folder);
    else
      load_terminal_bench(t, *folder);
  } catch (const std::exception& e) {  // yaml-cpp and toml++ report with exceptions
    t.load_error = e.what();
  }
  return t;
}

}  // namespace

std::string to_string(AgentKind kind) {
  switch (kind) {
    case AgentKind::Oracle:
      return "oracle";
    case AgentKind::Nop:
      return "nop";
    case AgentKind::Model:
      return "model";
  }
  return "unknown";
}

std::optional<AgentKind> agent_kind(const std::string& name) {
  for (AgentKind kind : {AgentKind::Oracle, AgentKind::Nop, AgentKind::Model})
    if (to_string(kind) == name) return kind;
  return std::nullopt;
}

std::string to_string(FailureMode mode) {
  switch (mode) {
    case FailureMode::None:
      return "";
    case FailureMode::AgentTimeout:
      return "agent_timeout";
    case FailureMode::TestTimeout:
      return "test_timeout";
    case FailureMode::TestFailed:
      return "test_failed";
    case FailureMode::EnvironmentError:
      return "environment_error";
    case FailureMode::FormatError:
      return "format_error";
    case FailureMode::ApiError:
      return "api_error";
    case FailureMode::AgentError:
      return "agent_error";
  }
  return "unknown";
}

std::string to_string(TaskFormat format) {
  switch (format) {
    case TaskFormat::Harbor:
      return "harbor";
    case TaskFormat::SweBench:
      return "swe-bench";
    default:
      return "terminal-bench";
  }
}

Result<std::vector<Task>> load_suite(const std::string& path) {
  const fs::path root(path);
  std::error_code ec;
  if (fs::is_regular_file(root, ec) &&
      (root.extension() == ".json" || root.extension() == ".jsonl")) {
    auto tasks = load_swe_file(root);
    if (tasks)
      std::sort(tasks->begin(), tasks->end(),
                [](const Task& a, const Task& b) { return a.name < b.name; });
    return tasks;
  }
  if (!fs::is_directory(root, ec))
    return tl::unexpected(Error{"no suite at " + path + " (not a directory, .json or .jsonl)"});
  std::vector<Task> tasks;
  if (is_task_dir(root)) {
    tasks.push_back(load_task(root));
    return tasks;
  }
  // A task folder that is a link is left out: it could lead anywhere on the host.
  for (const auto& entry : fs::directory_iterator(root, ec))
    if (!entry.is_symlink() && entry.is_directory() && is_task_dir(entry.path()))
      tasks.push_back(load_task(entry.path()));
  if (ec) return tl::unexpected(Error{"cannot read the suite " + path + ": " + ec.message()});
  if (tasks.empty())
    return tl::unexpected(
        Error{"no tasks in " + path + " (no task.yaml or task.toml in its folders)"});
  std::sort(tasks.begin(), tasks.end(),
            [](const Task& a, const Task& b) { return a.name < b.name; });
  return tasks;
}

}  // namespace warren::eval
