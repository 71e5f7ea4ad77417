// Sessions: a sandbox whose command is a shell reading from a pipe. Each command is sent base64
// encoded and eval'd (so that a syntax error cannot swallow what follows), with stdin from
// /dev/null, followed by end markers on stdout (with $?) and on stderr. Everything before the
// markers is the command's output.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "async_poll.hpp"
#include "session_state.hpp"
#include "supervision.hpp"
#include "tree_copy.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using namespace detail;
namespace asio = boost::asio;

std::string base64(std::string_view data) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < data.size(); i += 3) {
    const unsigned a = static_cast<unsigned char>(data[i]);
    const unsigned b = i + 1 < data.size() ? static_cast<unsigned char>(data[i + 1]) : 0;
    const unsigned c = i + 2 < data.size() ? static_cast<unsigned char>(data[i + 2]) : 0;
    const unsigned triple = (a << 16) | (b << 8) | c;
    out += kTable[(triple >> 18) & 63];
    out += kTable[(triple >> 12) & 63];
    out += i + 1 < data.size() ? kTable[(triple >> 6) & 63] : '=';
    out += i + 2 < data.size() ? kTable[triple & 63] : '=';
  }
  return out;
}

// One stream of one command: output up to an end marker. Bytes that may be the start of the
// marker are held back, so the marker never reaches the captured output.
class UntilMarker {
 public:
  UntilMarker(std::string marker, bool with_status, std::uint64_t limit)
      : marker_(std::move(marker)), with_status_(with_status), capture_(limit) {}

  void add(const char* data, std::size_t n) {
    if (done_) return;
    pending_.append(data, n);
    const std::size_t at = pending_.find(marker_);
    if (at != std::string::npos) {
      const std::size_t end = pending_.find('\n', at + marker_.size());
      if (end == std::string::npos) {  // the marker's line is not complete yet
        capture_.add(pending_.data(), at);
        pending_.erase(0, at);
        return;
      }
      capture_.add(pending_.data(), at);
      if (with_status_) status_ = std::atoi(pending_.c_str() + at + marker_.size());
      done_ = true;
      return;
    }
    const std::size_t keep = std::min(pending_.size(), marker_.size() + 16);
    capture_.add(pending_.data(), pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
  }
  // The stream ended without a marker (the shell exited): everything is output.
  void flush() {
    capture_.add(pending_.data(), pending_.size());
    pending_.clear();
  }
  bool done() const { return done_; }
  int status() const { return status_; }
  Capture& capture() { return capture_; }

 private:
  std::string marker_;
  bool with_status_;
  Capture capture_;
  std::string pending_;
  bool done_ = false;
  int status_ = 0;
};

// The sandbox's root directory, for the file API: PID 1's, through /proc. Rootless, PID 1 is
// undumpable in a memory map the host's user namespace made (it was forked, never executed), so
// its /proc/PID/root is the caller's to open only as root; the session's shell, its child, was
// executed in the sandbox's user namespace, which the caller owns, and has the same root. It is
// looked for before the session's first command from outside, while the shell is PID 1's only
// child.
int open_sandbox_root(pid_t pid1) {
  const std::string own = "/proc/" + std::to_string(pid1) + "/root";
  const int fd = open(own.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0 || errno != EACCES || geteuid() == 0) return fd;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat_file(entry.path() / "stat");
    const std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
    const std::size_t end = stat.rfind(')');  // the command name may hold anything but this
    if (end == std::string::npos) continue;
    char state = 0;
    long parent = 0;
    if (std::sscanf(stat.c_str() + end + 1, " %c %ld", &state, &parent) != 2 || parent != pid1)
      continue;
    return open((entry.path() / "root").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  errno = EACCES;
  return -1;
}

}  // namespace

Session::Session(std::unique_ptr<State> state) : state_(std::move(state)) {}
Session::~Session() = default;

bool Session::alive() const {
  return !state_->dead;
}

Result<std::unique_ptr<Session>> Session::start(const Policy& policy) {
  Runtime runtime;
  return start(runtime, policy);
}

Result<std::unique_ptr<Session>> Session::start(Runtime& runtime, const Policy& policy) {
  return runtime.resources_->io_contexts.run_to_completion(async_start(runtime, policy));
}

asio::awaitable<Result<std::unique_ptr<Session>>> Session::async_start(Runtime& runtime,
                                                                       Policy policy) {
  auto state = std::make_unique<State>();
  state->policy = policy;
  const bool has_workspace =
      !policy.workspace.empty() ||
      (!policy.snapshot.empty() && std::filesystem::is_directory(policy.snapshot + "/workspace"));
  state->workdir = has_workspace ? policy.workspace_path : "/";
  std::random_device random;
  state->nonce = std::to_string(random()) + std::to_string(random());
  auto launched = launch(runtime.resources_, policy,
                         Command{{"/bin/bash", "--noprofile", "--norc"}, std::nullopt});
  if (!launched) co_return tl::unexpected(launched.error());
  state->sandbox = std::move(*launched);
  std::unique_ptr<Session> session(new Session(std::move(state)));
  // The first command proves the shell is up (or brings back why the sandbox failed).
  std::string probe = "true";  // named: see the note on GCC 12 in sandbox.hpp
  auto ready = co_await session->async_exec(std::move(probe), std::chrono::seconds(30));
  if (!ready) co_return tl::unexpected(ready.error());
  if (!session->alive() || ready->exit_code != 0)
    co_return tl::unexpected(Error{"the session's shell did not start: " + ready->stderr_data});
  const std::string root = "/proc/" + std::to_string(session->state_->sandbox->pid) + "/root";
  session->state_->root_fd = open_sandbox_root(session->state_->sandbox->pid);
  if (session->state_->root_fd < 0)
    co_return tl::unexpected(Error{"opening " + root + ": " + std::strerror(errno)});
  co_return session;
}

Result<ExecResult> Session::exec(const std::string& command, std::chrono::milliseconds timeout) {
  return state_->sandbox->resources->io_contexts.run_to_completion(async_exec(command, timeout));
}

asio::awaitable<Result<ExecResult>> Session::async_exec(std::string command,
                                                        std::chrono::milliseconds timeout) {
  State& s = *state_;
  if (s.dead) co_return tl::unexpected(Error{"the session has ended"});
  Launched& box = *s.sandbox;
  if (timeout.count() <= 0) timeout = s.policy.limits.timeout;
  const std::string marker = "\n__WARREN_" + s.nonce + "_" + std::to_string(++s.commands);
  const std::string script = "eval \"$(printf '%s' '" + base64(command) +
                             "' | base64 -d)\" </dev/null\nprintf '" + "\\n" + marker.substr(1) +
                             "_%d\\n' \"$?\"; printf '\\n" + marker.substr(1) + "\\n' >&2\n";

  // What runs before the command is kept when it times out (background jobs of earlier commands).
  const std::vector<pid_t> before = box.cgroup ? box.cgroup->processes() : std::vector<pid_t>{};
  const std::uint64_t oom_before = box.cgroup ? box.cgroup->stats().oom_kills : 0;
  for (std::size_t sent = 0; sent < script.size();) {
    const ssize_t n = write(box.in.write, script.data() + sent, script.size() - sent);
    if (n <= 0) {
      s.dead = true;
      co_return tl::unexpected(Error{"the session's shell is gone"});
    }
    sent += static_cast<std::size_t>(n);
  }

  ExecResult result;
  UntilMarker out(marker + "_", true, s.policy.limits.output_bytes);
  UntilMarker err(marker, false, s.policy.limits.output_bytes);
  std::string setup_error;
  const auto started = Clock::now();
  auto deadline = started + timeout;
  bool interrupted = false, shell_done = false;
  // The shell's pipes last the session: they are read here, never closed. The setup pipe closes at
  // the shell's exec (nothing more to hear there).
  Supervision supervision(co_await asio::this_coro::executor);
  using AtEnd = Supervision::AtEnd;
  supervision.read(
      box.out, [&](const char* data, std::size_t size) { out.add(data, size); }, AtEnd::KeepOpen);
  supervision.read(
      box.err, [&](const char* data, std::size_t size) { err.add(data, size); }, AtEnd::KeepOpen);
  supervision.read(box.error,
                   [&](const char* data, std::size_t size) { setup_error.append(data, size); });
  supervision.watch(box.pidfd, [&] {
    shell_done = true;
    supervision.unwatch(box.pidfd);
  });
  while (!(out.done() && err.done()) && !shell_done) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const int ready =
        co_await supervision.round(static_cast<int>(std::max<long long>(0, left.count()) + 1));
    if (ready < 0 && errno != EINTR) break;
    if (shell_done) break;
    if (Clock::now() >= deadline) {
      if (interrupted || !box.cgroup) {  // could not interrupt it: the session goes
        box.kill();
        s.dead = true;
        result.timed_out = true;
        break;
      }
      // Interrupt: kill what this command started, keep the shell and older background jobs.
      interrupted = result.timed_out = true;
      for (int round = 0; round < 20; ++round) {
        bool any = false;
        for (pid_t pid : box.cgroup->processes()) {
          if (pid == box.pid || std::find(before.begin(), before.end(), pid) != before.end())
            continue;
          ::kill(pid, SIGKILL);
          any = true;
        }
        if (!any) break;
        co_await supervision.sleep(2);
      }
      deadline = Clock::now() + std::chrono::seconds(3);  // for the markers to come
    }
  }
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  if (shell_done || s.dead) {
    // The shell exited (`exit`, or killed): drain, and report its status as the command's.
    s.dead = true;
    for (int fd : {box.out.read, box.err.read}) {
      fcntl(fd, F_SETFL, O_NONBLOCK);
      auto& stream = fd == box.out.read ? out : err;
      while (read_chunk(fd, [&](const char* data, std::size_t size) { stream.add(data, size); }) >
             0) {
      }
    }
    out.flush();
    err.flush();
    if (reported(setup_error, InitWord::SetupFailed))
      co_return tl::unexpected(Error{"sandbox setup failed: " + setup_error.substr(1)});
    if (!box.reaped) box.reap();
    int status = 0;
    if (read(box.status.read, &status, sizeof status) == sizeof status && WIFEXITED(status)) {
      result.exit_code = WEXITSTATUS(status);
    } else {
      result.signal = SIGKILL;
    }
  } else {
    result.exit_code = out.status();
    if (interrupted) result.signal = SIGKILL;
  }
  if (box.cgroup) {
    const CgroupStats stats = box.cgroup->stats();
    result.peak_memory_bytes = stats.peak_memory_bytes;
    result.cpu_time = stats.cpu_time;
    result.oom_killed = stats.oom_kills > oom_before;
  }
  // Nothing the command made keeps a set-id bit on the host (docs/security.md).
  if (!s.policy.workspace.empty()) detail::clear_set_id_bits(s.policy.workspace);
  result.truncated = out.capture().truncated() || err.capture().truncated();
  result.stdout_data = out.capture().take();
  result.stderr_data = err.capture().take();
  co_return result;
}

}  // namespace warren::sandbox
