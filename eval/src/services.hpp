// A trial's docker-compose services (services.cpp): a private network, each service a sandbox on
// it with a root of its own over its image, started in depends_on order, and the agent's policy
// made a member of the same network. They live as long as this object: through the agent and the
// tests.
#pragma once

#include <filesystem>
#include <memory>
#include <utility>  // before Asio 1.74, which uses std::exchange without it
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "warren/eval/eval.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::eval::detail {

class Services {
 public:
  // Starts `task`'s services, each with a root under `trial_dir`/services in the trial's host ids,
  // and joins `agent` (the agent's policy, on its image) to their network: its Network::Private
  // member and the /etc/hosts lines that name every service. An Error says which service did not
  // start or become healthy, and why.
  static boost::asio::awaitable<Result<std::unique_ptr<Services>>> async_start(
      const Task& task, const std::filesystem::path& trial_dir, sandbox::WorkspaceLimits bounded,
      sandbox::Policy& agent, sandbox::Runtime& runtime);
  ~Services();
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

 private:
  Services() = default;
  std::shared_ptr<sandbox::PrivateNetwork> network_;
  std::vector<std::unique_ptr<sandbox::Session>> sessions_;
};

}  // namespace warren::eval::detail
