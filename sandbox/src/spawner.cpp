// The spawner: its client (the supervisor's side) and its main loop. Requests are serialised by
// the client's lock, so the stream carries one request and one reply at a time:
//   request: Header, with the plan's descriptors attached (pipes, cgroup files, network namespace,
//            then the trees of the plan's Attach steps in the order of the steps), then
//            `plan_bytes` bytes of plan
//   reply:   Reply, with PID 1's pidfd attached when pid > 0, then `error_bytes` of error text
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "mount.hpp"
#include "spawn.hpp"

extern char** environ;

namespace warren::sandbox::detail {

namespace {

constexpr std::uint32_t kMagic = 0x57535031;  // "WSP1"
constexpr int kFixedFds = 6;                  // go, error, status, stdin, stdout, stderr
// + cgroup files + netns + trees
constexpr int kMaxFds = kFixedFds + ChildPlan::kMaxCgroupFiles + 1 + kMaxAttached;

struct Header {
  std::uint32_t magic = kMagic;
  std::uint32_t plan_bytes = 0;
  std::uint8_t new_netns = 0;
  std::uint8_t has_netns = 0;
  std::uint8_t cgroup_files = 0;
  std::uint8_t trees = 0;
};

struct Reply {
  std::int32_t pid = -1;
  std::uint32_t error_bytes = 0;
};

// Moves all `size` bytes with `io` (read or write), in as many calls as it takes.
template <class Io, class Byte>
bool all(Io io, int fd, Byte* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = io(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_all(int fd, const char* data, std::size_t size) {
  return all(::write, fd, data, size);
}

bool read_all(int fd, char* data, std::size_t size) {
  return all(::read, fd, data, size);
}

// The first byte of `data` carries `fds`; the rest follows as plain stream bytes.
bool send_with_fds(int socket, const void* data, std::size_t size, const int* fds, int count) {
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  if (count > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * static_cast<std::size_t>(count));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * static_cast<std::size_t>(count));
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * static_cast<std::size_t>(count));
  }
  ssize_t n;
  do n = sendmsg(socket, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  return write_all(socket, static_cast<const char*>(data) + n, size - static_cast<std::size_t>(n));
}

// Reads `size` bytes; the descriptors that came with them are stored in `fds` (close-on-exec).
bool recv_with_fds(int socket, void* data, std::size_t size, int* fds, int& count) {
  iovec iov{data, size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  count = 0;
  if (n <= 0) return false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int got = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    if (!fds) {  // none expected: whatever came is closed
      for (int i = 0; i < got; ++i) close(reinterpret_cast<int*>(CMSG_DATA(c))[i]);
      continue;
    }
    std::memcpy(fds + count, CMSG_DATA(c), sizeof(int) * static_cast<std::size_t>(got));
    count += got;
  }
  if (msg.msg_flags & MSG_CTRUNC) return false;
  return read_all(socket, static_cast<char*>(data) + n, size - static_cast<std::size_t>(n));
}

bool executable(const std::string& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0;
}

// The received trees, in order, to the plan's Attach steps: false unless they are as many.
bool give_trees(ChildPlan& plan, const int* trees, int count) {
  int given = 0;
  for (FsStep& step : plan.before_pivot)
    if (step.kind == FsStep::Attach) {
      if (given == count) return false;
      step.tree = trees[given++];
    }
  for (const FsStep& step : plan.after_pivot)
    if (step.kind == FsStep::Attach) return false;
  return given == count;
}

// One request: decode it, start PID 1, reply. False when the supervisor is gone.
bool serve_one(int socket, int self, const SpawnReuse& reuse) {
  Header header;
  int fds[kMaxFds];
  int count = 0;
  if (!recv_with_fds(socket, &header, sizeof header, fds, count)) return false;
  struct Closer {
    int* fds;
    int& count;
    ~Closer() {
      for (int i = 0; i < count; ++i) close(fds[i]);
    }
  } closer{fds, count};
  std::string bytes(header.plan_bytes, '\0');
  if (header.magic != kMagic || !read_all(socket, bytes.data(), bytes.size())) return false;

  Reply reply;
  std::string error;
  Strings strings;
  std::vector<sock_filter> filter;
  ChildPlan plan;
  const int trees_at = kFixedFds + header.cgroup_files + header.has_netns;
  const int expected = trees_at + header.trees;
  Spawned spawned;
  if (header.cgroup_files > ChildPlan::kMaxCgroupFiles || header.trees > kMaxAttached ||
      count != expected) {
    error = "spawner: a request came with the wrong descriptors";
  } else if (!decode_plan(bytes, plan, strings, filter)) {
    error = "spawner: a request's plan could not be read";
  } else if (!give_trees(plan, fds + trees_at, header.trees)) {
    error = "spawner: a request's trees do not match its plan";
  } else {
    plan.go_read = fds[0];
    plan.error_write = fds[1];
    plan.status_write = fds[2];
    plan.stdin_read = fds[3];
    plan.stdout_write = fds[4];
    plan.stderr_write = fds[5];
    for (int i = 0; i < header.cgroup_files; ++i) plan.cgroup_tasks[i] = fds[kFixedFds + i];
    plan.lifeline = self;
    plan.signals_default = true;  // spawner_main saw to it
    const int netns = header.has_netns ? fds[trees_at - 1] : -1;
    auto result = spawn_init(plan, netns, header.new_netns != 0, reuse);
    if (result)
      spawned = *result;
    else
      error = result.error().message;
  }
  reply.pid = spawned.pid;
  reply.error_bytes = static_cast<std::uint32_t>(error.size());
  const bool sent =
      send_with_fds(socket, &reply, sizeof reply, &spawned.pidfd, spawned.pidfd >= 0 ? 1 : 0) &&
      write_all(socket, error.data(), error.size());
  if (spawned.pidfd >= 0) close(spawned.pidfd);
  return sent;
}

// The spawner's own mount namespace, which every PID 1 starts from as a copy: a small tmpfs root
// holding a fresh /proc, the templates, and the directories where sandboxes assemble their roots,
// and none of the host's mounts. Each mount in it costs every start twice (copied by clone, then
// dropped with the old root after pivot_root), and a container host has hundreds; this way the
// cost of a start does not depend on the host's mount table, and PID 1 cannot name a host file
// at all: the host paths a sandbox uses reach it as trees (FsStep::Attach). Root only; empty when
// it cannot be made, and then PID 1 starts from a copy of the host's namespace.
std::string make_root() {
  const std::string build = "/run/warren/spawner-root";   // on the host, an empty directory
  const std::string templates = "/run/warren/templates";  // inside the new root
  std::error_code ec;
  std::filesystem::create_directories(build, ec);
  // Slave: the host's later mounts under /usr or /etc still reach the templates' binds.
  if (ec || geteuid() != 0 || unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0)
    return {};
  const auto host = look_at_host();
  if (!host) return {};
  Strings strings;
  std::vector<FsStep> steps = {
      {FsStep::Mount, build.c_str(), "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k"}};
  for (const std::string& dir :
       {std::string("/proc"), std::string("/run"), std::string("/run/warren"), templates,
        host->staging, host->staging + "-layer"})
    steps.push_back({FsStep::Mkdir, strings.keep(build + dir)});
  // A proc fully visible (no masks over it) is what lets each sandbox mount its own. As each
  // sandbox's /proc: nosuid, nodev, noexec.
  steps.push_back({FsStep::Mount, strings.keep(build + "/proc"), "proc", "proc",
                   MS_NOSUID | MS_NODEV | MS_NOEXEC});
  for (const FsStep& step : plan_templates(*host, build + templates, strings))
    steps.push_back(step);
  for (const FsStep& step : steps) {
    if (run_fs_step(step) != 0) {
      umount2(build.c_str(), MNT_DETACH);  // half made is not used
      return {};
    }
  }
  if (chdir(build.c_str()) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) {
    if (chdir("/") == 0) umount2(build.c_str(), MNT_DETACH);
    return {};
  }
  umount2(".", MNT_DETACH);  // the host's mounts, stacked under the new root by pivot_root
  if (chdir("/") != 0) return {};
  return templates;
}

}  // namespace

std::string find_spawner() {
  if (const char* env = std::getenv("WARREN_SPAWNER"); env && *env) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec && executable(self.parent_path() / "warren-spawner"))
    return self.parent_path() / "warren-spawner";
#ifdef WARREN_SPAWNER_BUILD_PATH
  if (executable(WARREN_SPAWNER_BUILD_PATH)) return WARREN_SPAWNER_BUILD_PATH;
#endif
  return {};
}

Result<std::unique_ptr<Spawner>> Spawner::start(const std::string& path) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    return tl::unexpected(Error{std::string("spawner socket: ") + std::strerror(errno)});
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pair[1], 3);  // dup2 clears close-on-exec
  const char* argv[] = {path.c_str(), nullptr};
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, path.c_str(), &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pair[1]);
  if (rc != 0) {
    close(pair[0]);
    return tl::unexpected(Error{"cannot start " + path + ": " + std::strerror(rc)});
  }
  // The spawner's first words: where its templates are (or why there are none, which is fine).
  Reply hello;
  int none = 0;
  std::string templates;
  if (recv_with_fds(pair[0], &hello, sizeof hello, nullptr, none) && hello.pid == 0) {
    templates.resize(hello.error_bytes);
    if (!read_all(pair[0], templates.data(), templates.size())) templates.clear();
  }
  return std::unique_ptr<Spawner>(new Spawner(pair[0], pid, std::move(templates)));
}

Spawner::~Spawner() {
  close(socket_);  // the spawner sees the end of its input and exits
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

Result<Spawned> Spawner::spawn(const ChildPlan& plan, int netns, bool new_netns) {
  const std::string bytes = encode_plan(plan);
  Header header;
  header.plan_bytes = static_cast<std::uint32_t>(bytes.size());
  header.new_netns = new_netns;
  header.has_netns = netns >= 0;
  int fds[kMaxFds] = {plan.go_read,    plan.error_write,  plan.status_write,
                      plan.stdin_read, plan.stdout_write, plan.stderr_write};
  int count = kFixedFds;
  for (int fd : plan.cgroup_tasks)
    if (fd >= 0) fds[count++] = fd, ++header.cgroup_files;
  if (netns >= 0) fds[count++] = netns;
  for (const FsStep& step : plan.before_pivot)
    if (step.kind == FsStep::Attach && count < kMaxFds) fds[count++] = step.tree, ++header.trees;

  std::lock_guard guard(lock_);
  Reply reply;
  int pidfd = -1, received = 0;
  if (!send_with_fds(socket_, &header, sizeof header, fds, count) ||
      !write_all(socket_, bytes.data(), bytes.size()) ||
      !recv_with_fds(socket_, &reply, sizeof reply, &pidfd, received))
    return tl::unexpected(Error{"the sandbox spawner is gone"});
  std::string error(reply.error_bytes, '\0');
  read_all(socket_, error.data(), error.size());
  if (reply.pid <= 0 || received != 1) {
    if (received == 1) close(pidfd);
    return tl::unexpected(Error{error.empty() ? "the sandbox spawner failed" : error});
  }
  return Spawned{reply.pid, pidfd};
}

int spawner_main(int socket) {
  // Nothing but the socket and stdio is kept: the supervisor's other descriptors are not ours.
  if (socket != 3 && dup2(socket, 3) < 0) return 1;
  syscall(SYS_close_range, 4u, ~0u, 0u);
  // Once for all the sandboxes this process starts: see ChildPlan::signals_default.
  reset_signal_actions();
  // PID 1s are this process's children: reap them as they exit.
  sigset_t child;
  sigemptyset(&child);
  sigaddset(&child, SIGCHLD);
  sigprocmask(SIG_BLOCK, &child, nullptr);
  const std::string templates = make_root();
  Reply hello{0, static_cast<std::uint32_t>(templates.size())};
  if (!send_with_fds(3, &hello, sizeof hello, nullptr, 0) ||
      !write_all(3, templates.data(), templates.size()))
    return 1;
  const int children = signalfd(-1, &child, SFD_CLOEXEC | SFD_NONBLOCK);
  const int self = static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0));
  SpawnReuse reuse;
  reuse.home_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  reuse.stack_size = kInitStackSize;
  reuse.stack = static_cast<char*>(mmap(nullptr, reuse.stack_size, PROT_READ | PROT_WRITE,
                                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0));
  if (children < 0 || self < 0 || reuse.home_netns < 0 || reuse.stack == MAP_FAILED) return 1;
  while (true) {
    pollfd fds[2] = {{3, POLLIN, 0}, {children, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return 1;
    if (fds[1].revents) {
      signalfd_siginfo info;
      while (read(children, &info, sizeof info) > 0) {
      }
      while (waitpid(-1, nullptr, WNOHANG) > 0) {
      }
    }
    if (fds[0].revents && !serve_one(3, self, reuse))
      return 0;  // the supervisor is gone: so are we
  }
}

}  // namespace warren::sandbox::detail
