#include "tool.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

Result<ToolRun> run_tool(const std::vector<std::string>& argv, int log_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Captured output goes to memory files: a tool that fills one stream cannot block on the other.
  const int out = log_fd >= 0 ? -1 : memfd_create("tool-stdout", MFD_CLOEXEC);
  const int err = log_fd >= 0 ? -1 : memfd_create("tool-stderr", MFD_CLOEXEC);
  const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (null >= 0) posix_spawn_file_actions_adddup2(&actions, null, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd >= 0 ? log_fd : out, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd >= 0 ? log_fd : err, 2);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (null >= 0) close(null);
  ToolRun run;
  if (spawned == 0) {
    int raw = 0;
    while (waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
    }
    run.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
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
