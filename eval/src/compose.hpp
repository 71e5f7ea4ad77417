// A task's docker-compose.yaml (compose.cpp): the agent's service and the others, as far as a
// trial can honour them. Terminal-Bench's tasks name the agent's service `client`, Harbor's
// `main`; the others (a server, a database, a cluster's nodes) become sandboxes of their own on
// the trial's private network (services.cpp).
#pragma once

#include <string>
#include <vector>

#include "task_files.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

struct Compose {
  std::string file;  // relative to the task's folder; "" when the task has none
  // The agent's service: its name, and its build (relative to the task's folder).
  std::string agent_service, dockerfile, context;
  std::vector<std::string> agent_env;  // its `environment`, KEY=VALUE
  // The others, each after those it depends on.
  std::vector<Environment::Service> services;
};

// Reads the docker-compose.yaml (or .yml) in `dir` of the task's folder, if there is one. What
// cannot be honoured (fixed addresses, host folders, privileges, a key it does not know) throws a
// std::runtime_error that names it: such a task is not run rather than run in a world its tests
// do not expect. Compose's own plumbing is left aside: ports (every port of a service is open on
// the private network), container names, restart policies, the agent's command and volumes
// (Terminal-Bench's `sleep infinity` and log folder) and environment entries that name ${...}
// variables of Terminal-Bench's.
Compose read_compose(const TaskFolder& folder, const std::string& dir,
                     const std::string& agent_service);

}  // namespace warren::eval::detail
