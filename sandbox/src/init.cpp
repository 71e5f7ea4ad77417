// Inside the sandbox: PID 1 (sets up the filesystem and network, starts the command, reaps every
// orphan) and the command's own process (limits, seccomp, exec). Only system calls and the
// prepared plan are used here; see plan.hpp.
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "net.hpp"
#include "plan.hpp"
#include "recycle.hpp"

namespace warren::sandbox::detail {

WARREN_CHILD_CODE void apply_fs_steps(const ChildPlan& plan, const std::vector<FsStep>& steps);
WARREN_CHILD_CODE void apply_process_limits(const ChildPlan& plan, int keep_fd);

namespace {

WARREN_CHILD_CODE void write_all(int fd, const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = write(fd, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

// Reports "<kind><before><what>: <error>" and exits.
[[noreturn]] WARREN_CHILD_CODE void report(const ChildPlan& plan, InitWord kind, const char* what,
                                           int err, const char* before = "") {
  const char prefix[2] = {word(kind), '\0'};
  write_all(plan.error_write, prefix);
  write_all(plan.error_write, before);
  write_all(plan.error_write, what);
  write_all(plan.error_write, ": ");
  const char* desc = strerrordesc_np(err);
  write_all(plan.error_write, desc ? desc : "unknown error");
  _exit(127);
}

// One command: the plan's first, or one a recycled sandbox received.
struct CommandStart {
  const ChildPlan* plan;
  char* const* argv;
  char* const* envp;
  const char* search_path;
};

[[noreturn]] WARREN_CHILD_CODE void exec_command(const CommandStart& start) {
  const ChildPlan& plan = *start.plan;
  const char* file = start.argv[0];
  if (std::strchr(file, '/')) {
    execve(file, start.argv, start.envp);
    report(plan, InitWord::ExecFailed, file, errno);
  }
  // PATH search with a stack buffer: ENOENT moves on, anything else is remembered.
  int err = ENOENT;
  char candidate[4096];
  for (const char* dir = start.search_path; dir && *dir;) {
    const char* end = std::strchr(dir, ':');
    const std::size_t len = end ? static_cast<std::size_t>(end - dir) : std::strlen(dir);
    const std::size_t file_len = std::strlen(file);
    if (len + 1 + file_len + 1 <= sizeof candidate) {
      std::memcpy(candidate, dir, len);
      candidate[len] = '/';
      std::memcpy(candidate + len + 1, file, file_len + 1);
      execve(candidate, start.argv, start.envp);
      if (errno != ENOENT) err = errno;
    }
    dir = end ? end + 1 : nullptr;
  }
  report(plan, InitWord::ExecFailed, file, err);
}

WARREN_CHILD_CODE int run_command(void* start_arg) {
  const CommandStart& start = *static_cast<const CommandStart*>(start_arg);
  const ChildPlan& plan = *start.plan;
  // Signals as a freshly started program expects them, whatever the supervisor (or the spawner,
  // which blocks SIGCHLD) had: none blocked, none ignored (PID 1 saw to the actions).
  const std::uint64_t none = 0;
  syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
  umask(022);
  // A session of its own. Without one the command would share the spawner's process group with
  // the commands of every other sandbox, all of them the same host uid: kill(0, ...) would reach
  // them (Sandbox.OneSandboxCannotSignalAnother). It also leaves no controlling terminal, so
  // TIOCSTI has nothing to inject into (and it is filtered).
  setsid();
  if (dup2(plan.stdin_read, 0) < 0 || dup2(plan.stdout_write, 1) < 0 ||
      dup2(plan.stderr_write, 2) < 0)
    report(plan, InitWord::SetupFailed, "stdio", errno);
  if (plan.terminal && ioctl(0, TIOCSCTTY, 0) != 0)
    report(plan, InitWord::SetupFailed, "controlling terminal", errno);
  if (chdir(plan.workdir) != 0) report(plan, InitWord::SetupFailed, plan.workdir, errno);
  apply_process_limits(plan, plan.error_write);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &plan.seccomp) != 0)
    report(plan, InitWord::SetupFailed, "seccomp", errno);
  exec_command(start);
}

// Everything inherited but stdio, this sandbox's own pipe ends and the trees it attaches is closed:
// the parent's ends of those pipes (a copy of stdin's write end would keep the command from reading
// EOF), and the pipes of sandboxes other threads were starting at the same moment.
WARREN_CHILD_CODE void close_inherited_descriptors(const ChildPlan& plan) {
  int keep[7 + ChildPlan::kMaxCgroupFiles + kMaxAttached] = {plan.go_read,      plan.error_write,
                                                             plan.status_write, plan.stdin_read,
                                                             plan.stdout_write, plan.stderr_write};
  int count = 6;
  if (plan.lifeline >= 0) keep[count++] = plan.lifeline;
  for (int fd : plan.cgroup_tasks)
    if (fd >= 0) keep[count++] = fd;
  for (const FsStep& step : plan.before_pivot)  // the planner allows no more than kMaxAttached
    if (step.kind == FsStep::Attach) keep[count++] = step.tree;
  for (int i = 1; i < count; ++i)  // insertion sort: a handful of numbers
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
  unsigned next = 3;
  for (int i = 0; i < count; ++i) {
    const int fd = keep[i];
    if (fd >= static_cast<int>(next) + 1)
      syscall(SYS_close_range, next, static_cast<unsigned>(fd - 1), 0u);
    next = static_cast<unsigned>(fd) + 1;
  }
  syscall(SYS_close_range, next, ~0u, 0u);
}

// Starts the command and reaps every process until it exits: its wait status.
WARREN_CHILD_CODE int run_to_exit(CommandStart& start) {
  const ChildPlan& plan = *start.plan;
  // The command starts as posix_spawn starts a program: sharing this process's memory (nothing to
  // copy) on a stack of its own, with this process paused until it has exec'd or failed. Not
  // glibc's fork(), which would take locks that other threads of the supervisor may hold. The
  // stack is a part of this one's, unused while this process is paused.
  alignas(64) char command_stack[64 * 1024];
  const pid_t command = clone(run_command, command_stack + sizeof command_stack,
                              CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
  if (command < 0) child_fail(plan, "starting the command", errno);
  close(plan.stdin_read);
  if (plan.stdout_write != plan.stdin_read) close(plan.stdout_write);
  if (plan.stderr_write != plan.stdin_read) close(plan.stderr_write);
  close(plan.error_write);
  // Orphans are reaped as they come.
  while (true) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid == command) return status;
    if (pid < 0 && errno != EINTR) _exit(0);  // no status: the supervisor reports a kill
  }
}

}  // namespace

WARREN_CHILD_CODE void reset_signal_actions() {
  // The raw call: glibc's sigaction refuses the two real-time signals it keeps for itself.
  struct {
    void (*handler)(int) = SIG_DFL;
    unsigned long flags = 0;
    void (*restorer)() = nullptr;
    std::uint64_t mask = 0;
  } default_action;
  for (int sig = 1; sig <= 64; ++sig)
    syscall(SYS_rt_sigaction, sig, &default_action, nullptr, sizeof default_action.mask);
}

[[noreturn]] WARREN_CHILD_CODE void child_fail(const ChildPlan& plan, const char* what, int err,
                                               const char* before) {
  report(plan, InitWord::SetupFailed, what, err, before);
}

[[noreturn]] WARREN_CHILD_CODE void sandbox_init(ChildPlan& plan) {
  close_inherited_descriptors(plan);
  // Started in-process, this is a copy of the supervisor with its signal handlers, which a signal
  // from the command would run here (writing to descriptors whose numbers mean other things now).
  if (!plan.signals_default) reset_signal_actions();
  // Into the cgroup first, so that everything this process starts is in it.
  for (int fd : plan.cgroup_tasks) {
    if (fd < 0) continue;
    if (write(fd, "0", 1) != 1) child_fail(plan, "joining the cgroup", errno);
    close(fd);
  }
  // The bounding set, emptied while the starter writes the id maps, when PID 1 would otherwise
  // wait (a prctl a capability, each one a new cred: 80 us of CPU a start here). It limits only
  // what an exec may gain, so PID 1 keeps the capabilities it mounts with, and everything it starts
  // inherits the empty set.
  for (int cap = 0; cap <= plan.last_capability; ++cap)
    if (!(plan.kept_capabilities >> cap & 1)) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  char go = 0;
  if (read(plan.go_read, &go, 1) != 1) _exit(127);
  // The id maps exist now: become the namespace's root (host uid 100000, not host root), so that
  // files this process creates belong to a mapped id. Raw system calls: this process was cloned
  // from a possibly multi-threaded parent, and glibc's wrappers would try to signal the parent's
  // other threads, which do not exist here.
  if (syscall(SYS_setresgid, 0, 0, 0) != 0) child_fail(plan, "setresgid", errno);
  if (syscall(SYS_setgroups, 0, nullptr) != 0 && errno != EPERM)
    child_fail(plan, "setgroups", errno);
  if (syscall(SYS_setresuid, 0, 0, 0) != 0) child_fail(plan, "setresuid", errno);
  // The change of ids made this process undumpable where the host's root started it, not where a
  // user did (rootless, its host uid stays): said here, so that the command, which has the same
  // ids, owns none of /proc/1 and can neither trace it nor write its memory or OOM score.
  prctl(PR_SET_DUMPABLE, 0);

  // The starter gone (the spawner, or the supervisor's thread that started this in-process), the
  // whole sandbox goes. Set only now: a change of credentials clears it. A spawner that died
  // before this point is seen through its pidfd.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (plan.lifeline >= 0) {
    pollfd starter{plan.lifeline, POLLIN, 0};
    if (poll(&starter, 1, 0) != 0) _exit(127);
    close(plan.lifeline);
  }

  // PID 1 is in its cgroup now: a cgroup namespace made here is rooted at it.
  if (unshare(CLONE_NEWCGROUP) != 0) child_fail(plan, "cgroup namespace", errno);
  // Mount events must not propagate back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(plan, "making mounts private", errno);
  umask(0);  // directories get the modes the plan gives them (the command gets 022 back)
  apply_fs_steps(plan, plan.before_pivot);
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the new.
  // The steps entered the new root already; entering it again by name reaches whatever was
  // mounted over it last (a --mount onto /), not the directory under that.
  if (chdir(plan.new_root) != 0) child_fail(plan, plan.new_root, errno);
  if (syscall(SYS_pivot_root, ".", ".") != 0) child_fail(plan, "pivot_root", errno);
  if (umount2(".", MNT_DETACH) != 0) child_fail(plan, "detaching the old root", errno);
  if (chdir("/") != 0) child_fail(plan, "chdir /", errno);
  // A recycled sandbox numbers each command's processes from 2 again, as a new one would. Opened
  // before the read-only bind covers /proc/sys: the descriptor stays on the writable /proc below.
  // Optional: the file exists only where the kernel has checkpoint/restore.
  const int last_pid =
      plan.recycle ? open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC) : -1;
  // Its network's settings are written to /proc/sys/net, still writable here, too.
  if (plan.loopback_up) bring_loopback_up(plan);
  apply_fs_steps(plan, plan.after_pivot);
  if (plan.hostname && sethostname(plan.hostname, std::strlen(plan.hostname)) != 0)
    child_fail(plan, "sethostname", errno);

  AsNew as_new;  // a recycled sandbox is compared with this after each command
  const bool recyclable = plan.recycle && record_as_new(as_new);
  CommandStart start{&plan, plan.argv.data(), plan.envp.data(), plan.search_path};
  NextCommand next;
  while (true) {
    const int status = run_to_exit(start);
    if (!plan.recycle) {
      (void)!write(plan.status_write, &status, sizeof status);
      _exit(0);  // the kernel ends a pid namespace with its init: nothing the command left lives on
    }
    // The supervisor asked for recycling, and so takes the status as the end of everything: none
    // may be left, so that what it drains from the output pipes is all there is.
    end_every_process();
    const bool as_it_was = recyclable && still_as_new(as_new);
    char said[sizeof status + 1];
    std::memcpy(said, &status, sizeof status);
    said[sizeof status] = word(as_it_was ? InitWord::AsNew : InitWord::Changed);
    (void)!write(plan.status_write, said, sizeof said);
    close(plan.status_write);
    if (!as_it_was || !receive_command(plan.go_read, next)) _exit(0);
    plan.error_write = next.fds[0];
    plan.status_write = next.fds[1];
    plan.stdin_read = next.fds[2];
    plan.stdout_write = next.fds[3];
    plan.stderr_write = next.fds[4];
    start = {&plan, next.argv, next.envp, next.search_path};
    if (last_pid >= 0) (void)!pwrite(last_pid, "1", 1, 0);
  }
}

}  // namespace warren::sandbox::detail
