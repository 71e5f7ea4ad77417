// A task's docker-compose.yaml, read with yaml-cpp (compose.hpp). The keys are the Compose
// Specification's (compose-spec.io): build (a context, or context and dockerfile), image,
// command, environment (a list or a map), depends_on (a list, or a map of conditions),
// healthcheck (test, interval, retries), hostname, networks, volumes.
#include "compose.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

namespace warren::eval::detail {

namespace {

namespace fs = std::filesystem;

// Keys a trial need not honour: what Compose does with them is plumbing a private network and a
// sandbox already give (every port open among the services, no names of containers on a host).
const std::set<std::string> kLeftAside = {"ports",   "expose", "container_name",
                                          "restart", "labels", "stdin_open",
                                          "tty",     "init",   "platform"};
[[noreturn]] void refuse(const std::string& file, const std::string& service,
                         const std::string& why) {
  throw std::runtime_error(file + ": service " + service + ": " + why);
}

std::vector<std::string> strings_of(const YAML::Node& node) {
  std::vector<std::string> out;
  if (node.IsSequence())
    for (const YAML::Node& n : node) out.push_back(n.as<std::string>());
  else if (node.IsScalar())
    out.push_back(node.as<std::string>());
  return out;
}

// Compose's durations: "5s", "1m30s", "500ms", "2h".
std::chrono::milliseconds duration_of(const std::string& text, const std::string& file,
                                      const std::string& service) {
  std::chrono::milliseconds total{0};
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t digits = at;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
      ++digits;
    std::size_t unit_end = digits;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end])))
      ++unit_end;
    const std::string number = text.substr(at, digits - at),
                      unit = text.substr(digits, unit_end - digits);
    static const std::map<std::string, double> kMs = {
        {"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const auto scale = kMs.find(unit);
    if (number.empty() || scale == kMs.end())
      refuse(file, service, "'" + text + "' is not a duration");
    const double ms = std::stod(number) * scale->second;
    if (!(ms < 1e12)) refuse(file, service, "'" + text + "' is longer than any trial");
    total += std::chrono::milliseconds(static_cast<std::int64_t>(ms));
    at = unit_end;
  }
  return total;
}

// KEY=VALUE entries, from a list or a map; those that name a ${VARIABLE} (Terminal-Bench's
// T_BENCH_* plumbing, which nothing here sets) are left out.
std::vector<std::string> environment_of(const YAML::Node& node) {
  std::vector<std::string> env;
  if (node.IsMap())
    for (const auto& kv : node)
      env.push_back(kv.first.as<std::string>() + "=" +
                    (kv.second.IsNull() ? "" : kv.second.as<std::string>()));
  else
    env = strings_of(node);
  // An entry without a value takes the host's in Compose: nothing of the host's goes in here.
  std::erase_if(env, [](const std::string& kv) {
    return kv.find("${") != std::string::npos || kv.find('=') == std::string::npos;
  });
  return env;
}

// A name a service goes by (its key, hostname, container name, aliases): it becomes a folder's
// name on the host and a line of /etc/hosts, so only what a DNS label allows, and Compose's '_'.
bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 63 || !std::isalnum(static_cast<unsigned char>(name[0])))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// A build's Dockerfile and context, relative to the task's folder: `build` is relative to the
// compose file's folder `dir`.
std::pair<std::string, std::string> build_of(const YAML::Node& build, const std::string& dir) {
  std::string context = ".", dockerfile = "Dockerfile";
  if (build.IsScalar()) context = build.as<std::string>();
  if (build.IsMap()) {
    if (build["context"]) context = build["context"].as<std::string>();
    if (build["dockerfile"]) dockerfile = build["dockerfile"].as<std::string>();
  }
  const fs::path at = (fs::path(dir) / context).lexically_normal();
  std::string folder = at.string() == "." ? std::string() : at.string();
  while (!folder.empty() && folder.back() == '/') folder.pop_back();
  return {(at / dockerfile).lexically_normal().string(), folder};
}

// What no trial can give: fixed addresses, names of other hosts, a DNS server of its own.
void refuse_network_settings(const YAML::Node& service, const std::string& file,
                             const std::string& name) {
  if (const YAML::Node networks = service["networks"]; networks && networks.IsMap())
    for (const auto& network : networks)
      if (network.second.IsMap() &&
          (network.second["ipv4_address"] || network.second["ipv6_address"]))
        refuse(file, name, "a fixed address (ipv4_address) on its network cannot be given");
  for (const char* key : {"extra_hosts", "dns", "network_mode"})
    if (service[key]) refuse(file, name, std::string(key) + " cannot be honoured");
}

// The other names a service answers to on the network: its hostname, its container's name
// (unless Terminal-Bench's ${...}), its aliases on its networks.
std::vector<std::string> aliases_of(const YAML::Node& node, const std::string& file,
                                    const std::string& name) {
  std::vector<std::string> aliases;
  for (const char* key : {"hostname", "container_name"})
    if (node[key] && node[key].IsScalar()) aliases.push_back(node[key].as<std::string>());
  if (const YAML::Node networks = node["networks"]; networks && networks.IsMap())
    for (const auto& network : networks)
      if (network.second.IsMap() && network.second["aliases"])
        for (const std::string& alias : strings_of(network.second["aliases"]))
          aliases.push_back(alias);
  std::erase_if(aliases, [](const std::string& a) { return a.find("${") != std::string::npos; });
  for (const std::string& alias : aliases)
    if (!valid_name(alias)) refuse(file, name, "'" + alias + "' is not a name it can go by");
  return aliases;
}

// `healthy` collects the services it waits for until their healthcheck passes.
Environment::Service service_of(const std::string& name, const YAML::Node& node,
                                const TaskFolder& folder, const std::string& file,
                                const std::string& dir, std::set<std::string>& healthy) {
  Environment::Service s;
  s.name = name;
  s.aliases = aliases_of(node, file, name);
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node value = kv.second;
    if (kLeftAside.contains(key) || key == "networks" || key == "hostname") continue;
    if (key == "build") {
      std::tie(s.dockerfile, s.context) = build_of(value, dir);
      // The task is data: a service is built from beneath its folder, as the agent's image is.
      if (!plainly_beneath(s.dockerfile) || (!s.context.empty() && !plainly_beneath(s.context)) ||
          folder.entry(s.dockerfile) != TaskEntry::File)
        refuse(file, name,
               "its build (" + s.dockerfile + ") is not a Dockerfile beneath the task's folder");
    } else if (key == "image") {
      s.image_name = value.as<std::string>();
    } else if (key == "command") {
      s.shell = value.IsScalar();
      s.command = strings_of(value);
    } else if (key == "environment") {
      s.env = environment_of(value);
    } else if (key == "depends_on") {
      if (value.IsSequence()) {
        s.depends_on = strings_of(value);
      } else {
        for (const auto& dep : value) {
          const std::string on = dep.first.as<std::string>();
          const std::string condition = dep.second["condition"]
                                            ? dep.second["condition"].as<std::string>()
                                            : "service_started";
          if (condition == "service_healthy")
            healthy.insert(on);
          else if (condition != "service_started")
            refuse(file, name,
                   "depends_on " + on + " with condition " + condition + " cannot be honoured");
          s.depends_on.push_back(on);
        }
      }
    } else if (key == "healthcheck") {
      if (value["disable"] && value["disable"].as<bool>()) continue;
      s.healthcheck = strings_of(value["test"]);
      if (value["test"].IsScalar()) s.healthcheck.insert(s.healthcheck.begin(), "CMD-SHELL");
      if (!s.healthcheck.empty() && s.healthcheck.front() == "NONE") s.healthcheck.clear();
      if (value["interval"])
        s.health_interval = duration_of(value["interval"].as<std::string>(), file, name);
      if (value["retries"]) s.health_retries = value["retries"].as<int>();
      if (value["start_period"])
        s.health_start_period = duration_of(value["start_period"].as<std::string>(), file, name);
    } else if (key == "volumes") {
      // An anonymous volume (a path alone) is a writable folder, which the service's own layer
      // is; a host folder or a volume shared by name is not given.
      for (const std::string& v : strings_of(value))
        if (v.find(':') != std::string::npos)
          refuse(file, name,
                 "the volume " + v + " (a host folder or a named volume) cannot be given");
    } else {
      refuse(file, name, key + " cannot be honoured");
    }
  }
  if (s.dockerfile.empty() && s.image_name.empty())
    refuse(file, name, "neither build nor image says what it runs");
  if (!s.dockerfile.empty()) s.image_name.clear();  // `image` then names the build's result
  return s;
}

// `services` with each after those it depends on; a name depended on that is not a service, or a
// cycle, is refused.
std::vector<Environment::Service> in_start_order(std::vector<Environment::Service> services,
                                                 const std::string& agent,
                                                 const std::string& file) {
  std::vector<Environment::Service> ordered;
  std::set<std::string> started, visiting;
  std::map<std::string, Environment::Service*> by_name;
  for (auto& s : services) by_name[s.name] = &s;
  std::function<void(Environment::Service&)> visit = [&](Environment::Service& s) {
    if (started.contains(s.name)) return;
    if (!visiting.insert(s.name).second) refuse(file, s.name, "its depends_on go round in a cycle");
    for (const std::string& on : s.depends_on) {
      if (on == agent) refuse(file, s.name, "it depends on the agent's service, which starts last");
      const auto found = by_name.find(on);
      if (found == by_name.end())
        refuse(file, s.name, "it depends on " + on + ", which is no service");
      visit(*found->second);
    }
    started.insert(s.name);
    ordered.push_back(s);
  };
  for (auto& s : services) visit(s);
  return ordered;
}

}  // namespace

Compose read_compose(const TaskFolder& folder, const std::string& dir,
                     const std::string& agent_service) {
  Compose c;
  const std::string prefix = dir.empty() ? "" : dir + "/";
  for (const char* name : {"docker-compose.yaml", "docker-compose.yml"})
    if (c.file.empty() && folder.entry(prefix + name) == TaskEntry::File) c.file = prefix + name;
  if (c.file.empty()) return c;
  auto text = folder.read(c.file, "docker-compose");
  if (!text) throw std::runtime_error(text.error().message);
  const YAML::Node services = YAML::Load(*text)["services"];
  if (!services || !services.IsMap() || services.size() == 0)
    throw std::runtime_error(c.file + " names no services");
  // The agent's service: Terminal-Bench's is the one whose container it names as the client's
  // (home-server-https calls it `webserver`), else `agent_service`, else the only one.
  c.agent_service =
      services.size() == 1 ? services.begin()->first.as<std::string>() : agent_service;
  for (const auto& service : services)
    if (const YAML::Node name = service.second["container_name"];
        name && name.IsScalar() &&
        name.as<std::string>().find("T_BENCH_TASK_DOCKER_CLIENT_CONTAINER_NAME") !=
            std::string::npos)
      c.agent_service = service.first.as<std::string>();
  const YAML::Node agent = services[c.agent_service];
  if (!agent)
    throw std::runtime_error(c.file + " has no " + agent_service +
                             " service, the one the agent runs in");
  if (!valid_name(c.agent_service))
    refuse(c.file, c.agent_service, "not a name a service can have");
  refuse_network_settings(agent, c.file, c.agent_service);
  for (const char* key : {"privileged", "cap_add", "devices", "pid", "ipc", "user", "entrypoint"})
    if (agent[key]) refuse(c.file, c.agent_service, std::string(key) + " cannot be honoured");
  std::tie(c.dockerfile, c.context) =
      build_of(agent["build"] ? agent["build"] : YAML::Node("."), dir);
  if (agent["environment"]) c.agent_env = environment_of(agent["environment"]);
  // The agent waits for what its own depends_on asks to be healthy (its other keys are
  // Terminal-Bench's plumbing: `sleep infinity`, the log folder).
  std::set<std::string> healthy;
  if (const YAML::Node deps = agent["depends_on"]; deps && deps.IsMap())
    for (const auto& dep : deps)
      if (dep.second["condition"] && dep.second["condition"].as<std::string>() == "service_healthy")
        healthy.insert(dep.first.as<std::string>());
  std::vector<Environment::Service> others;
  for (const auto& service : services) {
    const std::string name = service.first.as<std::string>();
    if (name == c.agent_service) continue;
    refuse_network_settings(service.second, c.file, name);
    if (!valid_name(name)) refuse(c.file, name, "not a name a service can have");
    others.push_back(service_of(name, service.second, folder, c.file, dir, healthy));
  }
  for (Environment::Service& s : others) s.awaited = healthy.contains(s.name);
  c.services = in_start_order(std::move(others), c.agent_service, c.file);
  return c;
}

}  // namespace warren::eval::detail
