// One-shot runs: start a sandbox, feed stdin, collect output, enforce the timeouts, and report
// how the command ended.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>

#include "async_poll.hpp"
#include "launch.hpp"
#include "resources.hpp"
#include "supervision.hpp"
#include "tree_copy.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace asio = boost::asio;

Runtime::Runtime() : Runtime(Options{}) {}
Runtime::Runtime(Options options)
    : resources_(std::make_shared<detail::Resources>(options.keep, options.spawner)),
      warm_(std::make_shared<detail::WarmSandboxes>(options.recycle, options.recycle_idle)) {}
Runtime::~Runtime() {
  warm_->close();
}

Result<ExecResult> run(const Policy& policy, const Command& command) {
  // No command comes after this one: no spawner to start, no pools to keep, nothing to recycle.
  return Runtime(Runtime::Options{.keep = 0, .spawner = false, .recycle = 0}).run(policy, command);
}

Result<ExecResult> Runtime::run(const Policy& policy, const Command& command) {
  return resources_->io_contexts.run_to_completion(async_run(policy, command));
}

// A recycled sandbox of the same key, given this command; else a new one, recyclable when the
// Runtime keeps recycled sandboxes and starts them through the spawner.
Result<std::unique_ptr<detail::Launched>> start(const std::shared_ptr<detail::Resources>& resources,
                                                detail::WarmSandboxes& warm, const Policy& policy,
                                                const Command& command) {
  using namespace detail;
  std::string key = warm.keep() > 0 && resources->spawner ? recycle_key(policy, command) : "";
  if (key.empty()) return launch(resources, policy, command);
  // The seccomp program is the one a policy file held when the sandbox started: a file changed
  // since is another key.
  auto seccomp = resources->seccomp.get(policy.seccomp_policy);
  if (!seccomp) return tl::unexpected(seccomp.error());
  key += std::to_string(reinterpret_cast<std::uintptr_t>(seccomp->get()));
  const std::string message = command_message(policy, command);
  while (auto recycled = message.empty() ? nullptr : warm.take(key)) {
    if (relaunch(*recycled, policy, message)) {
      recycled->recycled = true;
      return recycled;
    }
    // PID 1 went away meanwhile: `recycled` ends here.
  }
  return launch(resources, policy, command, std::move(key), std::move(*seccomp));
}

asio::awaitable<Result<ExecResult>> Runtime::async_run(Policy policy, Command command) {
  using namespace detail;
  // The coroutine may outlive this Runtime: it holds on to what it gives back.
  const std::shared_ptr<WarmSandboxes> warm = warm_;
  auto launched = start(resources_, *warm, policy, command);
  if (!launched) co_return tl::unexpected(launched.error());
  Launched& l = **launched;
  Pipe &error = l.error, &status = l.status, &in = l.in, &out = l.out, &err = l.err;
  const int pidfd = l.pidfd;
  const auto started = l.started;
  Cgroup* cgroup = l.cgroup.get();
  ExecResult result;
  result.notes = l.notes;
  result.recycled = l.recycled;

  Supervision supervision(co_await asio::this_coro::executor);
  Capture stdout_capture(policy.limits.output_bytes), stderr_capture(policy.limits.output_bytes);
  std::string setup_error;
  auto last_output = Clock::now();
  supervision.read(out, [&](const char* data, std::size_t size) {
    last_output = Clock::now();
    stdout_capture.add(data, size);
  });
  supervision.read(err, [&](const char* data, std::size_t size) {
    last_output = Clock::now();
    stderr_capture.add(data, size);
  });
  supervision.read(error,
                   [&](const char* data, std::size_t size) { setup_error.append(data, size); });
  // Standard input: written as the command reads it, then closed.
  const std::string input = command.stdin_data.value_or("");
  supervision.write(in, input);
  // PID 1 reports the command's wait status; a recycled sandbox's PID 1 stays, and says with the
  // status, once every other process is gone, whether the sandbox is as new or not (InitWord).
  const bool recyclable = l.control >= 0;
  char report[sizeof(int) + 1] = {};
  std::size_t reported = 0;
  bool child_done = false;
  auto done = [&] {
    child_done = true;
    supervision.unwatch(pidfd);
    supervision.unwatch(status.read);
  };
  // Written whole, in one write: a pipe keeps it together. Never blocks: another sandbox starting
  // at that moment may briefly hold a copy of the write end.
  auto read_report = [&] {
    pollfd ready{status.read, POLLIN, 0};
    if (reported != 0 || poll(&ready, 1, 0) != 1) return;
    const ssize_t r = read(status.read, report, sizeof report);
    reported = r > 0 ? static_cast<std::size_t>(r) : 0;
  };
  // A PID 1 that found its sandbox changed reports and exits at once: both are ready in the same
  // round, in either order, and the report written before the exit is in the pipe by then.
  supervision.watch(pidfd, [&] {
    if (recyclable) read_report();
    done();
  });
  if (recyclable)
    supervision.watch(status.read, [&] {
      read_report();
      done();
    });
  while (supervision.reading() || !child_done) {
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

    const int ready = co_await supervision.round(wait_ms);
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
        l.kill();
        if (cgroup) cgroup->kill_all();
      }
    }
    if (ready == 0 && child_done) break;
  }
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  if (!recyclable) {
    l.reap();
    const ssize_t r = read(status.read, report, sizeof(int));
    reported = r > 0 ? static_cast<std::size_t>(r) : 0;
  }
  int command_status = 0;
  const bool have_status = reported >= sizeof command_status;
  std::memcpy(&command_status, report, sizeof command_status);
  if (cgroup) {
    const CgroupStats stats = cgroup->stats();
    result.peak_memory_bytes = stats.peak_memory_bytes;
    result.cpu_time = stats.cpu_time;
    result.oom_killed = stats.oom_kills > 0;
  }
  if (recyclable) {
    pollfd exited{pidfd, POLLIN, 0};
    // A failure to set the command up would come from the sandbox's state, which the checks
    // found as new: not trusted either way. A program that was not found is the command's.
    const bool started_fine =
        setup_error.empty() || detail::reported(setup_error, InitWord::ExecFailed);
    const bool as_new = reported == sizeof report && report[sizeof(int)] == word(InitWord::AsNew) &&
                        started_fine && !result.timed_out && !result.idle_timed_out &&
                        !result.oom_killed && (!cgroup || cgroup->reusable()) &&
                        poll(&exited, 1, 0) == 0;
    if (as_new) {
      supervision.hand_over(pidfd);  // the next command's supervision watches it
      for (Pipe* p : {&in, &out, &err, &error, &status}) supervision.close(*p);
      warm->put(std::move(*launched));  // another command may have it from here on
    } else {
      l.kill();  // a PID 1 waiting for a command that will not come
      l.reap();
    }
  }

  // Nothing the command made keeps a set-id bit on the host (docs/security.md).
  if (!policy.workspace.empty()) clear_set_id_bits(policy.workspace);

  if (detail::reported(setup_error, InitWord::SetupFailed))
    co_return tl::unexpected(Error{"sandbox setup failed: " + setup_error.substr(1)});

  if (!setup_error.empty()) {  // InitWord::ExecFailed: the command could not be executed
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
  co_return result;
}

}  // namespace warren::sandbox
