// Creating a sandbox's PID 1: clone into new namespaces (entering a pooled network namespace for
// the moment of the clone when given one) and write its id maps. PID 1 then waits for "go".
//
// This runs in the spawner process (spawner.hpp) when there is one, and in the supervisor's
// process otherwise. clone() copies the caller's page tables and PID 1 exits through them, so a
// small caller makes every start and every exit cheaper.
#pragma once

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>

#include "plan.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

struct Spawned {
  pid_t pid = -1;  // as the host numbers it
  int pidfd = -1;
};

// What a caller that starts sandboxes one after another keeps between them (the spawner): the
// network namespace to return to after entering a sandbox's, and the memory of PID 1's stack,
// which clone() copies into PID 1. Empty, both are made for each start.
constexpr std::size_t kInitStackSize = 256 * 1024;  // PID 1's

struct SpawnReuse {
  int home_netns = -1;
  char* stack = nullptr;
  std::size_t stack_size = 0;
};

// `netns` >= 0: the sandbox gets that network namespace. -1: a namespace of its own if
// `new_netns`, else the caller's.
Result<Spawned> spawn_init(const ChildPlan& plan, int netns, bool new_netns,
                           const SpawnReuse& reuse = {});

// A small single-threaded process that runs spawn_init for the supervisor: requests go over a
// socket with the plan as bytes and the descriptors attached, and the reply carries PID 1's
// pidfd. PID 1 is the spawner's child: the spawner reaps it, and it dies with the spawner
// (PDEATHSIG), which ends when the supervisor's side of the socket closes.
class Spawner {
 public:
  // `path`: the warren-spawner executable.
  static Result<std::unique_ptr<Spawner>> start(const std::string& path);
  ~Spawner();
  Spawner(const Spawner&) = delete;
  Spawner& operator=(const Spawner&) = delete;

  Result<Spawned> spawn(const ChildPlan& plan, int netns, bool new_netns);

  // Where the spawner made its templates (mount.hpp's plan_templates), in its own mount namespace
  // and so in every sandbox's; empty when it could not (rootless). With templates, that namespace
  // holds none of the host's mounts, and host paths reach PID 1 as trees (FsStep::Attach).
  const std::string& templates() const { return templates_; }

 private:
  Spawner(int socket, pid_t pid, std::string templates)
      : socket_(socket), pid_(pid), templates_(std::move(templates)) {}
  std::mutex lock_;  // one request at a time
  int socket_;
  pid_t pid_;
  std::string templates_;
};

// The warren-spawner executable: $WARREN_SPAWNER, else beside the running executable, else the
// one this build made. Empty when there is none (sandboxes then start in-process).
std::string find_spawner();

// The spawner's main loop, reading requests from `socket` until it closes.
int spawner_main(int socket);

}  // namespace warren::sandbox::detail
