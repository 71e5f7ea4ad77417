// What a Runtime shares between the sandboxes it starts: compiled seccomp programs and the pools of
// cgroups, network namespaces and io_contexts. Every Launched holds a reference, so the pools
// outlive the last sandbox that will give something back to them.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <optional>

#include "async_poll.hpp"
#include "cgroup.hpp"
#include "mount.hpp"
#include "net.hpp"
#include "seccomp.hpp"
#include "spawn.hpp"
#include "user.hpp"

namespace warren::sandbox::detail {

struct Resources {
  Resources(std::size_t keep, bool use_spawner) : host(look_at_host()), cgroups(keep) {
    // Rootless, a sandbox makes its own network namespace (the host's user cannot make one that
    // the sandbox could enter). So does a one-shot sandbox (nothing kept for reuse): a pool's
    // namespace costs it a thread and a setns more, for nothing. Either way the command's empty
    // capability bounding set leaves it no power over the namespace.
    if (geteuid() == 0 && keep > 0) netns.emplace(keep);
    // Without a spawner, sandboxes start from this process: slower, and just as isolated.
    if (const std::string path = use_spawner ? find_spawner() : std::string(); !path.empty())
      if (auto started = Spawner::start(path)) spawner = std::move(*started);
  }
  // Declared first, destroyed last: sandboxes started by it are gone before it is.
  std::unique_ptr<Spawner> spawner;
  Result<HostView> host;  // an Error (no staging directory) fails every start, with its reason
  SeccompCache seccomp;
  IdShifts id_shifts;
  CgroupPool cgroups;
  std::optional<NetnsPool> netns;
  IoContextPool io_contexts;  // for Runtime::run and Session::exec
};

}  // namespace warren::sandbox::detail
