// Rootless, Warren's own user and mount namespaces (sandbox.hpp's join_own_namespace): where an
// ordinary user's bounded workspaces are mounted, as rootless Podman keeps its mounts.
//
// One process per user, `warren-pause`, holds them: it made them, maps the user's id to itself
// (nothing more is mapped, so nothing in them reaches a file the user could not reach anyway), and
// sleeps. Every rootless `warren` that works on workspaces joins them at start, so that a
// workspace mounted by one process (a run's, an eval's kept trial) is there for the next, as root's
// are on the host. They last until the pause process ends (SIGTERM, or a reboot), and the host's
// own mount table never holds one of them. Its pid and start time are in pause.pid of the user's
// runtime folder; pause.lock serialises the processes that look for it or start it.
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "control_file.hpp"
#include "fd.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using detail::Fd;

tl::unexpected<Error> namespace_error(const std::string& message) {
  return tl::unexpected(Error{"Warren's own namespaces: " + message});
}

bool same_file(int fd, const char* path) {
  struct stat a {
  }, b{};
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// When the process `pid` started (field 22 of its stat, in clock ticks since boot): with the pid,
// what names one process for good, across its exec and whatever later takes the pid. "" if none.
std::string start_time(const std::string& pid) {
  const std::string stat = detail::read_control("/proc/" + pid + "/stat");
  std::istringstream fields(stat.substr(std::min(stat.rfind(')') + 1, stat.size())));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
  }
  return fields ? field : "";
}

// The pause process named in `dir`/pause.pid ("PID START"), if it still runs: the same process,
// the user's, in a user namespace other than the caller's. 0 when there is none.
pid_t running_pause(const std::string& dir) {
  std::ifstream file(dir + "/pause.pid");
  long pid = 0;
  std::string started;
  if (!(file >> pid >> started) || pid <= 1 || pid > INT_MAX) return 0;
  const std::string proc = "/proc/" + std::to_string(pid);
  struct stat st {};
  if (stat(proc.c_str(), &st) != 0 || st.st_uid != geteuid()) return 0;
  if (start_time(std::to_string(pid)) != started) return 0;
  Fd userns(open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
  if (userns.fd < 0 || same_file(userns.fd, "/proc/self/ns/user")) return 0;
  return static_cast<pid_t>(pid);
}

// In the pause process: its namespaces, the user's ids mapped to themselves, its pid written.
// 0, or the errno of the step that failed.
int become_pause(const std::string& dir, uid_t uid, gid_t gid) {
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return errno;
  // An unprivileged writer may map its own id alone, and gid_map only once setgroups is denied.
  if (!detail::write_control("/proc/self/uid_map",
                             std::to_string(uid) + " " + std::to_string(uid) + " 1") ||
      !detail::write_control("/proc/self/setgroups", "deny") ||
      !detail::write_control("/proc/self/gid_map",
                             std::to_string(gid) + " " + std::to_string(gid) + " 1"))
    return errno ? errno : EPERM;
  if (chdir("/") != 0) return errno;  // so that no folder it stood in stays busy
  const std::string temporary = dir + "/pause.pid." + std::to_string(getpid());
  {
    std::ofstream out(temporary);
    out << getpid() << " " << start_time("self") << "\n";
    if (!out.flush()) return EIO;
  }
  if (rename(temporary.c_str(), (dir + "/pause.pid").c_str()) != 0) return errno;
  return 0;
}

// Starts the pause process, detached (its own session, a child of init), and waits until its pid
// file is written.
Result<void> start_pause(const std::string& dir) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return namespace_error(std::string("pipe: ") + strerror(errno));
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  const pid_t child = fork();
  if (child < 0) return namespace_error(std::string("fork: ") + strerror(errno));
  if (child == 0) {
    close(ready[0]);
    setsid();
    if (fork() != 0) _exit(0);
    // Nothing of the process that started it stays open: not its terminal, not its pipes.
    const int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
    if (ready[1] > 3) syscall(SYS_close_range, 3u, static_cast<unsigned>(ready[1] - 1), 0u);
    syscall(SYS_close_range, static_cast<unsigned>(ready[1] + 1), ~0u, 0u);
    const int status = become_pause(dir, uid, gid);
    (void)!write(ready[1], &status, sizeof status);
    if (status != 0) _exit(1);
    close(ready[1]);
    // A sleep holds the namespaces from here: nothing of warren stays resident, and `ps` names it.
    execl("/bin/sleep", "warren-pause", "infinity", static_cast<char*>(nullptr));
    for (;;) pause();
  }
  close(ready[1]);
  Fd reader(ready[0]);
  waitpid(child, nullptr, 0);
  int status = -1;
  ssize_t got;
  while ((got = read(reader.fd, &status, sizeof status)) < 0 && errno == EINTR) {
  }
  if (got != sizeof status) return namespace_error("the pause process ended before it was ready");
  if (status != 0)
    return namespace_error(std::string("making them: ") + strerror(status) +
                           " (are user namespaces allowed here?)");
  return {};
}

}  // namespace

Result<std::string> user_runtime_dir() {
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  const std::string dir = runtime && runtime[0] == '/' ? std::string(runtime) + "/warren"
                                                       : "/tmp/warren-" + std::to_string(geteuid());
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return namespace_error("creating " + dir + ": " + strerror(errno));
  // Another user may have made it first (/tmp is everyone's): then it is not used.
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
    return namespace_error(dir + " is not a folder of this user's");
  if ((st.st_mode & 077) != 0 && chmod(dir.c_str(), 0700) != 0)
    return namespace_error("making " + dir + " private: " + strerror(errno));
  return dir;
}

Result<void> join_own_namespace() {
  if (geteuid() == 0) return {};  // root mounts on the host
  auto dir = user_runtime_dir();
  if (!dir) return tl::unexpected(dir.error());
  Fd lock(open((*dir + "/pause.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (lock.fd < 0 || flock(lock.fd, LOCK_EX) != 0)
    return namespace_error("locking " + *dir + "/pause.lock: " + strerror(errno));
  // The namespaces, held by descriptor: they last while these are open, whatever the pause does.
  // One that is ending as it is found (SIGTERM) is replaced.
  Fd userns(-1), mountns(-1);
  for (int attempt = 0; attempt < 2 && mountns.fd < 0; ++attempt) {
    pid_t pid = running_pause(*dir);
    if (!pid || attempt > 0) {
      if (auto started = start_pause(*dir); !started) return started;
      pid = running_pause(*dir);
      if (!pid) return namespace_error("the pause process did not stay");
    }
    const std::string proc = "/proc/" + std::to_string(pid);
    userns = Fd(open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC));
    mountns = Fd(open((proc + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
    if (userns.fd < 0) mountns = Fd(-1);
  }
  if (mountns.fd < 0) return namespace_error(std::string("opening them: ") + strerror(errno));
  // Joining a mount namespace moves the caller to its root: the current folder is found again by
  // name, so that paths below it cross the namespace's mounts, not the host's.
  char cwd[PATH_MAX];
  const bool has_cwd = getcwd(cwd, sizeof cwd) != nullptr;
  if (setns(userns.fd, CLONE_NEWUSER) != 0)
    return namespace_error(std::string("joining the user namespace: ") + strerror(errno) +
                           " (a process with threads cannot)");
  if (setns(mountns.fd, CLONE_NEWNS) != 0)
    return namespace_error(std::string("joining the mount namespace: ") + strerror(errno));
  if (has_cwd && chdir(cwd) != 0)
    return namespace_error(std::string("returning to ") + cwd + ": " + strerror(errno));
  return {};
}

bool can_mount_workspaces() {
  if (geteuid() == 0) return true;
  // Rootless: only where the caller holds CAP_SYS_ADMIN over its mount namespace, which is its own
  // user namespace's (join_own_namespace), never the host's.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0 || !(data[0].effective & (1u << CAP_SYS_ADMIN)))
    return false;
  Fd mountns(open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (mountns.fd < 0) return false;
  Fd owner(ioctl(mountns.fd, NS_GET_USERNS));
  return owner.fd >= 0 && same_file(owner.fd, "/proc/self/ns/user");
}

}  // namespace warren::sandbox
