// Starting a sandbox: prepares the plan, clones the sandbox's PID 1 into its namespaces, maps its
// ids, puts it in its cgroup, and lets it go.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "launch.hpp"
#include "mount.hpp"
#include "seccomp.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

WARREN_CHILD_CODE int clone_entry(void* arg) {
  sandbox_init(*static_cast<const ChildPlan*>(arg));
}

void build_process_plan(const Policy& policy, const Command& command, ChildPlan& plan,
                        Strings& strings) {
  plan.hostname = strings.keep(policy.hostname);
  plan.loopback_up = policy.network == Network::None;
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
}

// Where each sandbox assembles its root (inside its own mount namespace; the host sees an empty
// directory).
Result<std::string> staging_dir() {
  const std::string dir = geteuid() == 0 ? "/run/warren/sandbox-root"
                                         : "/tmp/warren-" + std::to_string(geteuid()) + "/root";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return tl::unexpected(Error{"cannot create " + dir + ": " + ec.message()});
  return dir;
}

}  // namespace

Result<std::unique_ptr<Launched>> launch(const Policy& policy, const Command& command) {
  if (command.argv.empty()) return tl::unexpected(Error{"no command to run"});
  auto seccomp = compile_seccomp_policy(policy.seccomp_policy);
  if (!seccomp) return tl::unexpected(seccomp.error());
  auto root = staging_dir();
  if (!root) return tl::unexpected(root.error());

  Strings strings;
  ChildPlan plan;
  plan.new_root = strings.keep(*root);
  if (auto fs = plan_filesystem(policy, *root, plan, strings); !fs)
    return tl::unexpected(fs.error());
  build_process_plan(policy, command, plan, strings);
  plan.seccomp = seccomp->program();

  auto l = std::make_unique<Launched>();
  Pipe go;
  Pipe &error = l->error, &status = l->status, &in = l->in, &out = l->out, &err = l->err;
  if (!go.open() || !error.open() || !status.open() || !in.open() || !out.open() || !err.open())
    return tl::unexpected(Error{std::string("pipe: ") + std::strerror(errno)});
  plan.go_read = go.read;
  plan.error_write = error.write;
  plan.status_write = status.write;
  plan.stdin_read = in.read;
  plan.stdout_write = out.write;
  plan.stderr_write = err.write;

  int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
              CLONE_NEWCGROUP | CLONE_PIDFD | SIGCHLD;
  if (policy.network == Network::None) flags |= CLONE_NEWNET;
  constexpr std::size_t kStack = 256 * 1024;
  void* stack =
      mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return tl::unexpected(Error{"cannot allocate the clone stack"});
  l->started = Clock::now();
  const pid_t pid = clone(clone_entry, static_cast<char*>(stack) + kStack, flags, &plan, &l->pidfd);
  const int clone_errno = errno;
  munmap(stack, kStack);
  if (pid < 0)
    return tl::unexpected(Error{std::string("cannot create the sandbox's namespaces: ") +
                                std::strerror(clone_errno)});
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
  if (auto maps = write_id_maps(pid); !maps) return abort_child(maps.error());
  if (auto cg = Cgroup::create("sb-" + std::to_string(pid), policy.limits)) {
    l->cgroup = std::move(*cg);
    if (auto attached = l->cgroup->attach(pid); !attached) return abort_child(attached.error());
  } else if (geteuid() == 0) {
    return abort_child(Error{"cgroups unusable: " + cg.error().message});
  } else {
    l->notes.push_back("memory, pids and CPU limits not applied (rootless: " + cg.error().message +
                       ")");
  }
  if (write(go.write, "g", 1) != 1) return abort_child(Error{"the sandbox did not start"});
  go.close_write();
  return l;
}

Launched::~Launched() {
  if (pidfd >= 0 && !reaped) {
    kill();
    reap();
  }
  if (pidfd >= 0) close(pidfd);
}

void Launched::kill() const {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
}

void Launched::reap() {
  siginfo_t info{};
  waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED);
  reaped = true;
}

}  // namespace warren::sandbox::detail
