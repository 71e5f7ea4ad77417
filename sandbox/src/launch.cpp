// Starting a sandbox: prepares the plan, takes a cgroup and a network namespace from the pools,
// has PID 1 spawned (by the spawner, or here), and lets it go.
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fd.hpp"
#include "launch.hpp"
#include "mount.hpp"
#include "net.hpp"
#include "spawn.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Docker's default capability set (moby's oci/caps/defaults.go lists the same fourteen).
constexpr std::uint64_t kContainerCapabilities =
    1ULL << CAP_CHOWN | 1ULL << CAP_DAC_OVERRIDE | 1ULL << CAP_FSETID | 1ULL << CAP_FOWNER |
    1ULL << CAP_MKNOD | 1ULL << CAP_NET_RAW | 1ULL << CAP_SETGID | 1ULL << CAP_SETUID |
    1ULL << CAP_SETFCAP | 1ULL << CAP_SETPCAP | 1ULL << CAP_NET_BIND_SERVICE |
    1ULL << CAP_SYS_CHROOT | 1ULL << CAP_KILL | 1ULL << CAP_AUDIT_WRITE;

void build_process_plan(const Policy& policy, const Command& command, ChildPlan& plan,
                        Strings& strings) {
  plan.hostname = strings.keep(policy.hostname);
  for (const std::string& arg : command.argv)
    plan.argv.push_back(const_cast<char*>(strings.keep(arg)));
  plan.argv.push_back(nullptr);
  std::string path = kDefaultPath;
  std::vector<std::string> env = {"HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "USER=root"};
  for (const std::string& kv : policy.env) {
    if (kv.starts_with("PATH=")) path = kv.substr(5);
    env.push_back(kv);
  }
  env.push_back("PATH=" + path);
  for (const std::string& kv : env) plan.envp.push_back(const_cast<char*>(strings.keep(kv)));
  plan.envp.push_back(nullptr);
  plan.search_path = strings.keep(path);
  const auto lim = [](std::uint64_t v) { return rlimit{v, v}; };
  plan.rlimits = {{RLIMIT_CORE, lim(0)},
                  {RLIMIT_NOFILE, lim(policy.limits.open_files)},
                  {RLIMIT_FSIZE, lim(policy.limits.file_size_bytes)}};
  plan.kept_capabilities = policy.privileges == Privileges::Container ? kContainerCapabilities : 0;
}

// Opens the tree each Attach step mounts: a detached recursive copy of its host path, made here in
// the host's mount namespace, idmapped into the sandbox's range where the step asks. The
// descriptors are PID 1's once it is started; `owned` closes this process's copies.
Result<void> open_trees(ChildPlan& plan, IdShifts& shifts,
                        std::vector<std::unique_ptr<Fd>>& owned) {
  for (FsStep& step : plan.before_pivot) {
    if (step.kind != FsStep::Attach) continue;
    step.tree =
        open_tree(AT_FDCWD, step.source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (step.tree < 0)
      return tl::unexpected(
          Error{std::string("cannot open ") + step.source + " to mount: " + std::strerror(errno)});
    owned.push_back(std::make_unique<Fd>(step.tree));
    if (!step.shift_ids || geteuid() != 0) continue;
    auto userns = shifts.namespace_for(plan.host_ids);
    if (!userns) return tl::unexpected(userns.error());
    if (auto shifted = shift_tree(step.tree, *userns, step.source); !shifted) return shifted;
  }
  return {};
}

// The range the sandbox runs in, as Policy::host_ids says: given, the owner's of the workspace or
// the snapshot (the range they were made for; the shared one when their owner begins none), or
// one taken for this sandbox and kept with it.
Result<void> choose_host_ids(const Policy& policy, Launched& l) {
  if (geteuid() != 0) return {};
  l.host_ids = policy.host_ids;
  const std::string made_for = !policy.workspace.empty()  ? policy.workspace
                               : !policy.root.empty()     ? policy.root
                               : !policy.snapshot.empty() ? policy.snapshot + "/root"
                                                          : std::string();
  if (!l.host_ids && !made_for.empty()) {
    struct stat st {};
    const unsigned owner = ::stat(made_for.c_str(), &st) == 0 ? range_starting_at(st.st_uid) : 0;
    l.host_ids = owner ? owner : kHostIdBase;
  }
  if (!l.host_ids) {
    auto taken = IdRange::take();
    if (!taken) return tl::unexpected(taken.error());
    l.ids = std::make_unique<IdRange>(std::move(*taken));
    l.host_ids = l.ids->base();
  }
  if (!range_starting_at(l.host_ids))
    return tl::unexpected(
        Error{"host ids " + std::to_string(l.host_ids) + " begin no id range (IdRange::base)"});
  return {};
}

}  // namespace

Result<std::unique_ptr<Launched>> launch(std::shared_ptr<Resources> resources, const Policy& policy,
                                         const Command& command, std::string recycle_key,
                                         std::shared_ptr<const SeccompProgram> compiled) {
  if (command.argv.empty()) return tl::unexpected(Error{"no command to run"});
  auto seccomp = compiled ? Result<std::shared_ptr<const SeccompProgram>>(std::move(compiled))
                          : resources->seccomp.get(policy.seccomp_policy, policy.privileges);
  if (!seccomp) return tl::unexpected(seccomp.error());
  if (!resources->host) return tl::unexpected(resources->host.error());
  const HostView& host = *resources->host;

  Strings strings;
  ChildPlan plan;
  plan.new_root = strings.keep(host.staging);
  const std::string templates = resources->spawner ? resources->spawner->templates() : "";
  if (auto fs = plan_filesystem(policy, host, templates, plan, strings); !fs)
    return tl::unexpected(fs.error());
  build_process_plan(policy, command, plan, strings);
  plan.last_capability = host.last_capability;
  plan.seccomp = (*seccomp)->program();
  plan.recycle = !recycle_key.empty();

  // From here on the Launched gives back whatever it took, however the start ends.
  auto l = std::make_unique<Launched>();
  l->resources = std::move(resources);
  if (auto ids = choose_host_ids(policy, *l); !ids) return tl::unexpected(ids.error());
  plan.host_ids = l->host_ids;
  std::vector<std::unique_ptr<Fd>> trees;
  if (auto opened = open_trees(plan, l->resources->id_shifts, trees); !opened)
    return tl::unexpected(opened.error());
  if (auto cg = l->resources->cgroups.acquire(policy.limits)) {
    l->cgroup = std::move(*cg);
  } else if (geteuid() == 0) {
    return tl::unexpected(Error{"cgroups unusable: " + cg.error().message});
  } else {
    l->notes.push_back("memory, pids and CPU limits not applied (rootless: " + cg.error().message +
                       ")");
  }
  if (plan.recycle) {
    l->recycle_key = std::move(recycle_key);
    if (!policy.workspace.empty())
      l->host_paths.push_back(std::make_unique<HostPathCheck>(policy.workspace));
    for (const Mount& m : policy.mounts)
      l->host_paths.push_back(std::make_unique<HostPathCheck>(m.source));
  }
  Pipe go;  // a socket: a recycled sandbox's PID 1 takes its next commands from it
  Pipe &error = l->error, &status = l->status, &in = l->in, &out = l->out, &err = l->err;
  if (!go.open_socket() || !error.open() || !status.open() || !in.open() || !out.open() ||
      !err.open())
    return tl::unexpected(Error{std::string("pipe: ") + std::strerror(errno)});
  plan.go_read = go.read;
  plan.error_write = error.write;
  plan.status_write = status.write;
  plan.stdin_read = in.read;
  plan.stdout_write = out.write;
  plan.stderr_write = err.write;
  if (command.terminal >= 0) {  // the pipes stay unused: the supervisor reads EOF from them
    plan.stdin_read = plan.stdout_write = plan.stderr_write = command.terminal;
    plan.terminal = true;
  }

  if (l->cgroup) {  // v1: PID 1 joins its cgroup itself (at most 4 hierarchies)
    auto fds = l->cgroup->self_attach_files();
    if (!fds) return tl::unexpected(fds.error());
    for (std::size_t i = 0; i < fds->size(); ++i) plan.cgroup_tasks[i] = (*fds)[i];
  }

  int netns = -1;
  if (policy.network == Network::Outbound) {
    auto outbound = OutboundNetwork::start();
    if (!outbound) return tl::unexpected(outbound.error());
    l->outbound = std::move(*outbound);
    netns = l->outbound->netns();
  } else if (policy.network == Network::Private) {
    if (!policy.member)
      return tl::unexpected(Error{"a private network's sandbox needs its member (Policy::member)"});
    l->member = policy.member;  // its namespace lives as long as the sandbox
    netns = l->member->netns();
  } else if (policy.network == Network::None && l->resources->netns) {
    auto pooled = l->resources->netns->acquire();
    if (!pooled) return tl::unexpected(pooled.error());
    netns = l->netns = *pooled;
  } else if (policy.network == Network::None) {
    plan.loopback_up = true;  // rootless: a namespace of its own, brought up by PID 1
  }
  const bool new_netns = policy.network == Network::None && netns < 0;
  l->started = Clock::now();
  auto spawned = l->resources->spawner ? l->resources->spawner->spawn(plan, netns, new_netns)
                                       : spawn_init(plan, netns, new_netns);
  if (!spawned) return tl::unexpected(spawned.error());
  const pid_t pid = spawned->pid;
  l->pidfd = spawned->pidfd;
  l->pid = pid;
  go.close_read();
  error.close_write();
  status.close_write();
  in.close_read();
  out.close_write();
  err.close_write();

  // On failure the Launched destructor kills and reaps the half-started sandbox.
  auto abort_child = [](Error e) -> Result<std::unique_ptr<Launched>> {
    return tl::unexpected(std::move(e));
  };
  if (l->cgroup && plan.cgroup_tasks[0] < 0)  // v2
    if (auto attached = l->cgroup->attach(pid); !attached) return abort_child(attached.error());
  if (write(go.write, "g", 1) != 1) return abort_child(Error{"the sandbox did not start"});
  if (plan.recycle)
    std::swap(l->control, go.write);
  else
    go.close_write();
  return l;
}

std::string command_message(const Policy& policy, const Command& command) {
  Strings strings;
  ChildPlan plan;
  build_process_plan(policy, command, plan, strings);
  return encode_command(plan.argv, plan.envp, plan.search_path);
}

Result<void> relaunch(Launched& l, const Policy& policy, const std::string& message) {
  if (l.cgroup)
    if (auto prepared = l.cgroup->prepare(policy.limits); !prepared)
      return tl::unexpected(prepared.error());
  Pipe &error = l.error, &status = l.status, &in = l.in, &out = l.out, &err = l.err;
  for (Pipe* p : {&error, &status, &in, &out, &err}) p->close_both();  // the last command's
  if (!error.open() || !status.open() || !in.open() || !out.open() || !err.open())
    return tl::unexpected(Error{std::string("pipe: ") + std::strerror(errno)});
  l.started = Clock::now();
  if (!send_command(l.control, message, {error.write, status.write, in.read, out.write, err.write}))
    return tl::unexpected(Error{"the recycled sandbox is gone"});
  error.close_write();
  status.close_write();
  in.close_read();
  out.close_write();
  err.close_write();
  return {};
}

Launched::~Launched() {
  if (pidfd >= 0 && !reaped) {
    kill();
    reap();
  }
  if (pidfd >= 0) close(pidfd);
  if (control >= 0) close(control);
  // PID 1 is reaped: the kernel has ended every process of its pid namespace, and with them
  // every socket of the network namespace. What is left in the cgroup is killed before reuse.
  if (cgroup) resources->cgroups.release(std::move(cgroup));
  if (netns >= 0) resources->netns->release(netns);
}

void Launched::kill() const {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

void Launched::reap() {
  // PID 1 is this process's child only when it was started in-process; the spawner reaps its
  // own, and then the pidfd says when it has exited.
  siginfo_t info{};
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
    pollfd exited{pidfd, POLLIN, 0};
    while (poll(&exited, 1, -1) < 0 && errno == EINTR) {
    }
  }
  reaped = true;
}

}  // namespace warren::sandbox::detail
