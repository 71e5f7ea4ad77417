// The supervisor: prepares the plan, clones the sandbox's PID 1 into its namespaces, maps its
// ids, puts it in its cgroup, lets it go, and collects output and status until it ends.
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

#include "cgroup.hpp"
#include "mount.hpp"
#include "seccomp.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// A pipe whose ends close themselves.
struct Pipe {
  int read = -1, write = -1;
  ~Pipe() { close_both(); }
  bool open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    read = fds[0];
    write = fds[1];
    return true;
  }
  void close_read() { close_fd(read); }
  void close_write() { close_fd(write); }
  void close_both() {
    close_read();
    close_write();
  }
  static void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

// Keeps the first and last half of `limit` bytes of a stream.
class Capture {
 public:
  explicit Capture(std::uint64_t limit) : half_(limit / 2) {}
  void add(const char* data, std::size_t n) {
    total_ += n;
    const std::size_t to_head = std::min<std::size_t>(n, half_ - std::min(half_, head_.size()));
    head_.append(data, to_head);
    data += to_head;
    n -= to_head;
    if (n == 0) return;
    tail_.append(data, n);
    if (tail_.size() > 2 * half_) tail_.erase(0, tail_.size() - half_);
  }
  bool truncated() const { return total_ > 2 * half_; }
  std::string take() {
    if (!truncated()) return head_ + tail_;
    const std::string tail = tail_.substr(tail_.size() - std::min(tail_.size(), half_));
    const std::uint64_t dropped = total_ - head_.size() - tail.size();
    return head_ + "\n[warren: " + std::to_string(dropped) + " bytes of output dropped]\n" + tail;
  }

 private:
  std::size_t half_;
  std::uint64_t total_ = 0;
  std::string head_, tail_;
};

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
}  // namespace detail

Result<ExecResult> run(const Policy& policy, const Command& command) {
  using namespace detail;
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

  Pipe go, error, status, in, out, err;
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
  int pidfd = -1;
  const auto started = Clock::now();
  const pid_t pid = clone(clone_entry, static_cast<char*>(stack) + kStack, flags, &plan, &pidfd);
  const int clone_errno = errno;
  munmap(stack, kStack);
  if (pid < 0)
    return tl::unexpected(Error{std::string("cannot create the sandbox's namespaces: ") +
                                std::strerror(clone_errno)});
  go.close_read();
  error.close_write();
  status.close_write();
  in.close_read();
  out.close_write();
  err.close_write();

  ExecResult result;
  auto abort_child = [&](Error e) -> Result<ExecResult> {
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
    waitpid(pid, nullptr, 0);
    close(pidfd);
    return tl::unexpected(std::move(e));
  };
  if (auto maps = write_id_maps(pid); !maps) return abort_child(maps.error());
  std::unique_ptr<Cgroup> cgroup;
  if (auto cg = Cgroup::create("sb-" + std::to_string(pid), policy.limits)) {
    cgroup = std::move(*cg);
    if (auto attached = cgroup->attach(pid); !attached) return abort_child(attached.error());
  } else if (geteuid() == 0) {
    return abort_child(Error{"cgroups unusable: " + cg.error().message});
  } else {
    result.notes.push_back(
        "memory, pids and CPU limits not applied (rootless: " + cg.error().message + ")");
  }
  if (write(go.write, "g", 1) != 1) return abort_child(Error{"the sandbox did not start"});
  go.close_write();

  // Standard input: written as the command reads it, then closed.
  const std::string input = command.stdin_data.value_or("");
  std::size_t input_sent = 0;
  if (input.empty()) in.close_write();
  if (in.write >= 0) fcntl(in.write, F_SETFL, O_NONBLOCK);

  Capture stdout_capture(policy.limits.output_bytes), stderr_capture(policy.limits.output_bytes);
  std::string setup_error;
  auto last_output = Clock::now();
  bool child_done = false;
  char buffer[65536];
  while (out.read >= 0 || err.read >= 0 || error.read >= 0 || !child_done) {
    pollfd fds[5];
    int n = 0;
    auto watch = [&](int fd, short events) {
      if (fd >= 0) fds[n++] = {fd, events, 0};
    };
    watch(out.read, POLLIN);
    watch(err.read, POLLIN);
    watch(error.read, POLLIN);
    watch(child_done ? -1 : pidfd, POLLIN);
    watch(in.write, POLLOUT);

    int wait_ms = -1;
    const auto now = Clock::now();
    auto until = [&](Clock::time_point deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      const int ms = static_cast<int>(std::max<long long>(0, left.count()) + 1);
      wait_ms = wait_ms < 0 ? ms : std::min(wait_ms, ms);
    };
    if (!child_done && policy.limits.timeout.count() > 0) until(started + policy.limits.timeout);
    if (!child_done && policy.limits.idle_timeout.count() > 0)
      until(last_output + policy.limits.idle_timeout);
    // Once PID 1 is gone every process of the sandbox is gone, and what they wrote is already in
    // the pipes: drain without waiting (another sandbox starting at that moment may briefly hold
    // a copy of a write end, so EOF is not worth waiting for).
    if (child_done) wait_ms = 0;

    const int ready = poll(fds, static_cast<nfds_t>(n), wait_ms);
    if (ready < 0 && errno != EINTR) break;
    const auto after = Clock::now();
    if (!child_done) {
      const bool over_time =
          policy.limits.timeout.count() > 0 && after - started >= policy.limits.timeout;
      const bool idle = policy.limits.idle_timeout.count() > 0 &&
                        after - last_output >= policy.limits.idle_timeout;
      if (over_time || idle) {
        result.timed_out = result.timed_out || over_time;
        result.idle_timed_out = result.idle_timed_out || (idle && !over_time);
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
        if (cgroup) cgroup->kill_all();
      }
    }
    if (ready == 0 && child_done) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      const int fd = fds[i].fd;
      if (fd == pidfd) {
        child_done = true;
        continue;
      }
      if (fd == in.write) {
        const ssize_t w = write(fd, input.data() + input_sent, input.size() - input_sent);
        if (w > 0) input_sent += static_cast<std::size_t>(w);
        if (w < 0 || input_sent == input.size()) in.close_write();
        continue;
      }
      const ssize_t r = read(fd, buffer, sizeof buffer);
      if (r <= 0) {
        if (fd == out.read) out.close_read();
        if (fd == err.read) err.close_read();
        if (fd == error.read) error.close_read();
        continue;
      }
      if (fd == error.read) {
        setup_error.append(buffer, static_cast<std::size_t>(r));
      } else {
        last_output = after;
        (fd == out.read ? stdout_capture : stderr_capture).add(buffer, static_cast<std::size_t>(r));
      }
    }
  }
  siginfo_t info{};
  waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED);
  close(pidfd);
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);

  if (!setup_error.empty() && setup_error[0] == 'S')
    return tl::unexpected(Error{"sandbox setup failed: " + setup_error.substr(1)});

  int command_status = 0;
  const bool have_status =
      read(status.read, &command_status, sizeof command_status) == sizeof command_status;
  if (cgroup) {
    const CgroupStats stats = cgroup->stats();
    result.peak_memory_bytes = stats.peak_memory_bytes;
    result.cpu_time = stats.cpu_time;
    result.oom_killed = stats.oom_kills > 0;
  }
  if (!setup_error.empty()) {  // 'E': the command could not be executed
    result.exit_code = 127;
    stderr_capture.add("warren: cannot execute ", 23);
    stderr_capture.add(setup_error.data() + 1, setup_error.size() - 1);
    stderr_capture.add("\n", 1);
  } else if (have_status && WIFEXITED(command_status)) {
    result.exit_code = WEXITSTATUS(command_status);
  } else {
    result.signal = have_status && WIFSIGNALED(command_status) ? WTERMSIG(command_status) : SIGKILL;
  }
  result.truncated = stdout_capture.truncated() || stderr_capture.truncated();
  result.stdout_data = stdout_capture.take();
  result.stderr_data = stderr_capture.take();
  return result;
}

}  // namespace warren::sandbox
