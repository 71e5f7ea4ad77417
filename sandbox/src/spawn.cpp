#include "spawn.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net.hpp"
#include "user.hpp"

namespace warren::sandbox::detail {

namespace {

WARREN_CHILD_CODE int clone_entry(void* arg) {
  sandbox_init(*static_cast<ChildPlan*>(arg));
}

}  // namespace

Result<Spawned> spawn_init(const ChildPlan& plan, int netns, bool new_netns,
                           const SpawnReuse& reuse) {
  // The cgroup namespace is made by PID 1 once it is in its cgroup, so that it is rooted there.
  int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
              CLONE_PIDFD | SIGCHLD;
  if (netns < 0 && new_netns) flags |= CLONE_NEWNET;
  std::unique_ptr<EnterNetns> in_netns;  // the sandbox inherits this thread's network namespace
  if (netns >= 0) {
    auto entered = EnterNetns::enter(netns, reuse.home_netns);
    if (!entered) return tl::unexpected(entered.error());
    in_netns = std::move(*entered);
  }
  // PID 1 gets a copy of this memory (no CLONE_VM), so the same stack serves every start.
  std::size_t stack_size = reuse.stack_size;
  void* stack = reuse.stack;
  if (!stack) {
    stack_size = kInitStackSize;
    stack = mmap(nullptr, stack_size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return tl::unexpected(Error{"cannot allocate the clone stack"});
  }
  Spawned spawned;
  spawned.pid = clone(clone_entry, static_cast<char*>(stack) + stack_size, flags,
                      const_cast<ChildPlan*>(&plan), &spawned.pidfd);
  const int clone_errno = errno;
  in_netns.reset();
  if (!reuse.stack) munmap(stack, stack_size);
  if (spawned.pid < 0)
    return tl::unexpected(Error{std::string("cannot create the sandbox's namespaces: ") +
                                std::strerror(clone_errno)});
  if (auto maps = write_id_maps(spawned.pid, plan.host_ids); !maps) {
    syscall(SYS_pidfd_send_signal, spawned.pidfd, SIGKILL, nullptr, 0);
    siginfo_t info{};
    waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(spawned.pidfd), &info, WEXITED);
    close(spawned.pidfd);
    return tl::unexpected(maps.error());
  }
  return spawned;
}

}  // namespace warren::sandbox::detail
