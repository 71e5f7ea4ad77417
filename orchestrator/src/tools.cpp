// ToolBox: dispatch, the shell-backed tools, and running one step's calls.
#include "tools.hpp"

namespace warren::orchestrator::detail {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

ToolOutcome refused(const std::string& message) {
  return ToolOutcome{.output = "Error: " + message};
}

// Which resource a call uses: calls on one resource run in order, different resources at once.
// The editor works on the files the shell's commands read, so it is the shell's resource: a step
// that edits a file and then runs the tests must run the tests on the edited file (run side by
// side, the shell's python read the file before the edit landed, now and then).
enum class Resource { Shell, None };

Resource resource_of(const toolcall::ParsedToolCall& call) {
  if (!call.errors.empty()) return Resource::None;
  if (call.name == "bash" || call.name == "search" || call.name == "str_replace_editor")
    return Resource::Shell;
  return Resource::None;
}

}  // namespace

std::string head_and_tail(const std::string& text, std::size_t limit, bool* cut) {
  if (cut) *cut = text.size() > limit;
  if (text.size() <= limit) return text;
  const std::size_t head = limit / 2, tail = limit - head;
  return text.substr(0, head) + "\n[... " + std::to_string(text.size() - limit) +
         " bytes cut from the middle ...]\n" + text.substr(text.size() - tail);
}

boost::asio::awaitable<ToolOutcome> ToolBox::shell(std::string command,
                                                   std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  // The trial's time limit bounds every command.
  bool cut_by_deadline = false;
  if (deadline_ != Deadline::max()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - start);
    if (left.count() <= 0) co_return refused("the trial's time limit has been reached");
    if (left < timeout) {
      timeout = left;
      cut_by_deadline = true;
    }
  }
  auto result = co_await session_.async_exec(std::move(command), timeout);
  ToolOutcome out;
  out.duration_ms = ms_since(start);
  if (!result || !session_.alive()) {
    out.output = "Error: the sandbox session ended" +
                 (result ? std::string() : ": " + result.error().message);
    out.environment_failed = true;
    co_return out;
  }
  std::string text = result->stdout_data + result->stderr_data;
  out.truncated = result->truncated;
  bool cut = false;
  out.output = head_and_tail(text, settings_.limits.observation_bytes, &cut);
  out.truncated = out.truncated || cut;
  out.exit_code = result->exit_code;
  if (result->timed_out && cut_by_deadline)
    out.output += "\n[interrupted: the trial's time limit was reached]";
  else if (result->timed_out)
    out.output += "\n[interrupted: the command ran past its timeout of " +
                  std::to_string(timeout.count() / 1000) + " s]";
  else if (result->oom_killed)
    out.output += "\n[killed: the sandbox ran out of memory]";
  else if (result->exit_code != 0)
    out.output += "\n[exit code " + std::to_string(result->exit_code) + "]";
  co_return out;
}

boost::asio::awaitable<ToolOutcome> ToolBox::bash(const Json& arguments) {
  std::chrono::milliseconds timeout = settings_.command_timeout;
  if (arguments.contains("timeout")) {
    const auto seconds = arguments["timeout"].get<std::int64_t>();
    if (seconds <= 0) co_return refused("timeout must be a positive number of seconds");
    timeout = std::chrono::seconds(seconds);
  }
  co_return co_await shell(arguments["command"].get<std::string>(), timeout);
}

boost::asio::awaitable<ToolOutcome> ToolBox::search(const Json& arguments) {
  const std::string pattern = arguments["pattern"].get<std::string>();
  if (pattern.empty()) co_return refused("pattern is empty");
  const std::string path = arguments.value("path", "/workspace");
  // grep's status 1 means no match; more than 200 lines are cut by head.
  std::string command = "grep -rnIE --exclude-dir=.git -e " + shell_quote(pattern) + " -- " +
                        shell_quote(path) + " | head -n 200; test ${PIPESTATUS[0]} -le 1";
  ToolOutcome out = co_await shell(std::move(command), settings_.command_timeout);
  if (out.exit_code == 0 && out.output.empty()) out.output = "No matches.";
  co_return out;
}

boost::asio::awaitable<ToolOutcome> ToolBox::run_one(const toolcall::ParsedToolCall& call) {
  if (!call.errors.empty()) {
    std::string problems;
    for (const std::string& e : call.errors) problems += (problems.empty() ? "" : "; ") + e;
    co_return refused("the call to " + call.name + " was not run: " + problems +
                      ". Fix the call and try again.");
  }
  auto arguments = toolcall::parse_json(call.arguments);
  if (!arguments || !arguments->is_object())
    co_return refused("the arguments of " + call.name + " are not a JSON object");
  try {
    if (call.name == "bash") co_return co_await bash(*arguments);
    if (call.name == "search") co_return co_await search(*arguments);
    if (call.name == "str_replace_editor") {
      const auto start = Clock::now();
      ToolOutcome out = editor_.run(*arguments);
      out.duration_ms = ms_since(start);
      co_return out;
    }
    if (call.name == "submit") co_return ToolOutcome{.output = "Submitted.", .submitted = true};
  } catch (const Json::exception& e) {  // a type the schema check let through
    co_return refused("the arguments of " + call.name + " do not fit: " + e.what());
  }
  co_return refused("there is no tool named " + call.name);
}

boost::asio::awaitable<void> ToolBox::run_in_order(
    const std::vector<toolcall::ParsedToolCall>& calls, std::vector<std::size_t> indexes,
    std::vector<ToolOutcome>& outcomes) {
  for (std::size_t i : indexes) {
    outcomes[i] = co_await run_one(calls[i]);
    // What a command printed (cut inside a character, or not text at all) goes to the model, the
    // store and the exports as text: bytes that are not UTF-8 become U+FFFD here, once.
    outcomes[i].output = toolcall::valid_utf8(outcomes[i].output);
  }
}

boost::asio::awaitable<std::vector<ToolOutcome>> ToolBox::run(
    const std::vector<toolcall::ParsedToolCall>& calls, Deadline deadline) {
  deadline_ = deadline;
  std::vector<ToolOutcome> outcomes(calls.size());
  std::map<Resource, std::vector<std::size_t>> by_resource;
  for (std::size_t i = 0; i < calls.size(); ++i) by_resource[resource_of(calls[i])].push_back(i);
  if (by_resource.size() <= 1) {  // one resource: nothing to overlap
    std::vector<std::size_t> all(calls.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    co_await run_in_order(calls, std::move(all), outcomes);
    co_return outcomes;
  }
  // One coroutine per resource, side by side on this thread.
  std::vector<boost::asio::awaitable<void>> groups;
  for (auto& [resource, indexes] : by_resource)
    groups.push_back(run_in_order(calls, std::move(indexes), outcomes));
  co_await run_all(std::move(groups));
  co_return outcomes;
}

}  // namespace warren::orchestrator::detail

namespace warren::orchestrator {

std::unique_ptr<ToolRunner> make_sandbox_tools(sandbox::Session& session,
                                               const AgentSettings& settings) {
  return std::make_unique<detail::ToolBox>(session, settings);
}

}  // namespace warren::orchestrator
