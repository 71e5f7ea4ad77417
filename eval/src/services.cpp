// A trial's docker-compose services (services.hpp), as Compose runs them: each in a container of
// its own (here a sandbox on a root over its image, with a container root's privileges in its
// own user namespace), on one network where every service's name resolves, its command the
// compose file's or its image's, started after what it depends on, and, where something waits
// for it to be healthy, checked with its healthcheck until it passes.
#include "services.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::eval::detail {

namespace {

namespace fs = std::filesystem;
using orchestrator::shell_quote;

// Where a service's output goes, in its own root: read back for the error when it fails.
constexpr const char* kServiceLog = "/tmp/warren-service.log";

std::string quoted(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& a : argv) {
    if (!line.empty()) line += ' ';
    line += shell_quote(a);
  }
  return line;
}

// What the service runs, as a shell line: its image's ENTRYPOINT, then compose's command (a
// string form is left to the shell to split) or else the image's CMD.
std::string service_command(const Environment::Service& s) {
  std::string line = quoted(s.image.entrypoint);
  const std::string rest =
      s.command.empty() ? quoted(s.image.cmd) : (s.shell ? s.command.front() : quoted(s.command));
  if (!line.empty() && !rest.empty()) line += ' ';
  return line + rest;
}

// The healthcheck as a shell line: ["CMD", ARGS...] runs ARGS, ["CMD-SHELL", LINE] runs LINE by
// sh -c.
std::string health_command(const std::vector<std::string>& test) {
  if (test.front() == "CMD-SHELL")
    return "sh -c " + shell_quote(test.size() > 1 ? test[1] : "true");
  return quoted(
      std::vector<std::string>(test.begin() + (test.front() == "CMD" ? 1 : 0), test.end()));
}

// The image's environment, then the compose file's, which wins.
std::vector<std::string> service_env(const Environment::Service& s) {
  std::vector<std::string> env = s.env;
  auto key = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (const std::string& kv : s.image.env)
    if (std::none_of(s.env.begin(), s.env.end(),
                     [&](const std::string& mine) { return key(mine) == key(kv); }))
      env.push_back(kv);
  return env;
}

std::string tail_of(std::string text, std::size_t bytes = 400) {
  if (text.size() > bytes) text = "..." + text.substr(text.size() - bytes);
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

// Runs the healthcheck until it passes, within the time Compose gives a service before it marks
// it unhealthy (its start period, then `retries` failed checks an interval apart), but checking
// as often as each second: a service that is up is used at once.
boost::asio::awaitable<Result<void>> await_healthy(const Environment::Service& s,
                                                   sandbox::Session& session) {
  using std::chrono::milliseconds;
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + s.health_start_period +
                        s.health_interval * (std::max(s.health_retries, 1) + 1);
  const milliseconds poll = std::min(s.health_interval, milliseconds(1000));
  std::string last;
  for (bool first = true; first || std::chrono::steady_clock::now() + poll < deadline;
       first = false) {
    timer.expires_after(first ? std::min(poll, milliseconds(500)) : poll);
    co_await timer.async_wait(boost::asio::use_awaitable);
    std::string command = health_command(s.healthcheck);  // named: see sandbox.hpp on GCC 12
    auto ran = co_await session.async_exec(std::move(command), std::chrono::seconds(30));
    if (ran && ran->exit_code == 0) co_return Result<void>{};
    last = ran ? ran->stdout_data + ran->stderr_data : ran.error().message;
  }
  auto log = session.read_file(kServiceLog, 1 << 20);
  co_return tl::unexpected(Error{"service " + s.name +
                                 " did not become healthy (its check said: " + tail_of(last) +
                                 "; its output: " + tail_of(log ? *log : "") + ")"});
}

}  // namespace

Services::~Services() = default;

boost::asio::awaitable<Result<std::unique_ptr<Services>>> Services::async_start(
    const Task& task, const fs::path& trial_dir, sandbox::WorkspaceLimits bounded,
    sandbox::Policy& agent, sandbox::Runtime& runtime) {
  const Environment& e = task.environment;
  std::unique_ptr<Services> started(new Services());
  auto network = sandbox::PrivateNetwork::create();
  if (!network)
    co_return tl::unexpected(Error{"the services' network: " + network.error().message});
  started->network_ = *network;
  // Every member first, so that each root's /etc/hosts names all of them.
  std::vector<std::shared_ptr<sandbox::NetworkMember>> members;
  std::vector<std::string> hosts;
  for (std::size_t i = 0; i <= e.services.size(); ++i) {
    auto member = started->network_->join();
    if (!member)
      co_return tl::unexpected(Error{"the services' network: " + member.error().message});
    std::string line = (*member)->address() + "\t";
    line += i < e.services.size() ? e.services[i].name : e.service_name;
    if (i < e.services.size())
      for (const std::string& alias : e.services[i].aliases) line += " " + alias;
    hosts.push_back(std::move(line));
    members.push_back(*member);
  }
  std::error_code ec;
  fs::create_directories(trial_dir / "services", ec);
  for (std::size_t i = 0; i < e.services.size(); ++i) {
    const Environment::Service& s = e.services[i];
    // compose.cpp lets no other name through: the name is a folder of the trial's.
    if (s.name.empty() || s.name.find('/') != std::string::npos || s.name.starts_with('.'))
      co_return tl::unexpected(Error{"'" + s.name + "' is not a name a service can have"});
    const fs::path root = trial_dir / "services" / s.name;
    if (auto made =
            sandbox::overlay_workspace(s.image.layers, {}, root.string(), agent.host_ids, bounded);
        !made)
      co_return tl::unexpected(Error{"service " + s.name + ": " + made.error().message});
    fs::permissions(root, fs::perms::owner_write, fs::perm_options::add, ec);
    sandbox::Policy p;
    p.limits = agent.limits;
    p.limits.timeout = std::chrono::seconds(60);  // each command the harness runs in it
    p.host_ids = agent.host_ids;
    p.root = root.string();
    // A sandbox's working folder is below /: a service without a WORKDIR is started from / below.
    const std::string workdir = s.image.workdir.empty() ? "/" : s.image.workdir;
    p.workspace_path = workdir == "/" ? "/root" : workdir;
    p.env = service_env(s);
    p.privileges = sandbox::Privileges::Container;
    p.network = sandbox::Network::Private;
    p.member = members[i];
    p.hosts = hosts;
    p.hostname = s.name;
    auto session = co_await sandbox::Session::async_start(runtime, std::move(p));
    if (!session)
      co_return tl::unexpected(Error{"service " + s.name + ": " + session.error().message});
    const std::string line = service_command(s);
    if (line.empty())
      co_return tl::unexpected(Error{"service " + s.name +
                                     ": neither its command nor its image "
                                     "says what it runs"});
    std::string run = "cd " + shell_quote(workdir) + " && (" + line + ") > " + kServiceLog +
                      " 2>&1 < /dev/null &";
    auto ran = co_await (*session)->async_exec(std::move(run));
    if (!ran || ran->exit_code != 0)
      co_return tl::unexpected(Error{"service " + s.name + ": starting it: " +
                                     (ran ? tail_of(ran->stderr_data) : ran.error().message)});
    started->sessions_.push_back(std::move(*session));
    if (s.awaited && !s.healthcheck.empty())
      if (auto healthy = co_await await_healthy(s, *started->sessions_.back()); !healthy)
        co_return tl::unexpected(healthy.error());
  }
  agent.network = sandbox::Network::Private;
  agent.member = members.back();
  agent.hosts = hosts;
  agent.hostname = e.service_name;
  co_return std::move(started);
}

}  // namespace warren::eval::detail
