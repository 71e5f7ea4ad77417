#include "tool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

extern char** environ;

namespace warren::image::detail {

namespace {

std::string read_from_start(int fd) {
  std::string data;
  if (lseek(fd, 0, SEEK_SET) != 0) return data;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

}  // namespace

std::uint64_t free_bytes(const std::string& folder) {
  struct statvfs disk {};
  if (statvfs(folder.c_str(), &disk) != 0) return UINT64_MAX;  // unknown: nothing to hold it to
  return static_cast<std::uint64_t>(disk.f_bavail) * disk.f_frsize;
}

std::string on_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t at = 0; at <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', at), dirs.size());
    const std::string candidate = dirs.substr(at, end - at) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    at = end + 1;
  }
  for (const char* dir : {"/usr/sbin/", "/sbin/"})
    if (access((dir + name).c_str(), X_OK) == 0) return dir + name;
  return "";
}

namespace {

std::string seconds_text(std::chrono::milliseconds duration) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(duration).count()) + " s";
}

std::string mib_text(std::uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

// The limit the tool has passed now, with its text; ToolLimit::none when none.
ToolLimit passed_limit(const ToolLimits& limits, int log_fd,
                       std::chrono::steady_clock::time_point started, std::string& text) {
  struct stat log {};
  if (limits.timeout.count() > 0 && std::chrono::steady_clock::now() - started > limits.timeout) {
    text = "it ran past its limit of " + seconds_text(limits.timeout);
    return ToolLimit::time;
  }
  if (limits.log_bytes > 0 && log_fd >= 0 && fstat(log_fd, &log) == 0 &&
      static_cast<std::uint64_t>(log.st_size) > limits.log_bytes) {
    text = "its output passed " + mib_text(limits.log_bytes);
    return ToolLimit::log;
  }
  if (limits.keep_free > 0 && free_bytes(limits.disk) < limits.keep_free) {
    text = "the disk of " + limits.disk + " had less than " + mib_text(limits.keep_free) +
           " free, which is kept free";
    return ToolLimit::disk;
  }
  return ToolLimit::none;
}

// Waits for `pid` to end; with limits, kills it once it passes one, saying which in `run`. The
// raw wait status, or -1 when it was not this call that reaped it.
int wait_within(pid_t pid, int log_fd, const ToolLimits& limits, ToolRun& run) {
  const auto started = std::chrono::steady_clock::now();
  const bool limited =
      limits.timeout.count() > 0 || (limits.log_bytes > 0 && log_fd >= 0) || limits.keep_free > 0;
  int raw = 0;
  while (true) {
    const pid_t waited = waitpid(pid, &raw, limited ? WNOHANG : 0);
    if (waited == pid) return raw;
    if (waited < 0 && errno != EINTR) return -1;
    if (waited != 0) continue;  // EINTR
    if (run.over_limit == ToolLimit::none) {
      run.over_limit = passed_limit(limits, log_fd, started, run.over_limit_text);
      if (run.over_limit != ToolLimit::none && limits.before_kill) limits.before_kill(pid);
    }
    if (run.over_limit != ToolLimit::none) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

Result<ToolRun> run_tool(const std::vector<std::string>& argv, int log_fd, int death_signal,
                         ToolLimits limits) {
  const std::string program = on_path(argv[0]);
  if (program.empty())
    return tl::unexpected(Error{argv[0] + " cannot be started (not found on PATH): "
                                          "scripts/setup.sh installs it"});
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Captured output goes to memory files: a tool that fills one stream cannot block on the other.
  const int out = log_fd >= 0 ? -1 : memfd_create("tool-stdout", MFD_CLOEXEC);
  const int err = log_fd >= 0 ? -1 : memfd_create("tool-stderr", MFD_CLOEXEC);
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  // fork, not posix_spawn: the child asks for a signal when the thread that started it dies, so a
  // build does not outlive a Warren that was killed (the thread waits for the tool, so it dies
  // only with the process). Only async-signal-safe calls between fork and exec.
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(127);  // the parent died before the request counted
    if (null >= 0) dup2(null, 0);
    dup2(log_fd >= 0 ? log_fd : out, 1);
    dup2(log_fd >= 0 ? log_fd : err, 2);
    execve(program.c_str(), args.data(), environ);
    _exit(127);
  }
  const int spawned = pid < 0 ? errno : 0;
  if (null >= 0) close(null);
  ToolRun run;
  if (spawned == 0) {
    const int raw = wait_within(pid, log_fd, limits, run);
    // Not waited for (another waiter reaped it): its end is unknown, never a success.
    run.status = raw < 0 ? 255 : WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
    if (out >= 0) run.out = read_from_start(out);
    if (err >= 0) run.err = read_from_start(err);
  }
  for (int fd : {out, err})
    if (fd >= 0) close(fd);
  if (spawned != 0)
    return tl::unexpected(Error{argv[0] + " cannot be started (" + std::strerror(spawned) +
                                "): scripts/setup.sh installs it"});
  return run;
}

std::string last_lines(const std::string& text, int lines) {
  std::size_t at = text.size();
  while (at > 0 && (text[at - 1] == '\n' || text[at - 1] == ' ')) --at;
  const std::size_t end = at;
  for (int seen = 0; at > 0; --at)
    if (text[at - 1] == '\n' && ++seen == lines) break;
  return text.substr(at, end - at);
}

}  // namespace warren::image::detail
