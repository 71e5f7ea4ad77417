#include "net.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "control_file.hpp"
#include "user.hpp"

namespace warren::sandbox::detail {

namespace {

// The two settings a sandbox's network gets, whoever makes it (new_network_namespace,
// bring_loopback_up).
constexpr const char* kUnprivilegedPortStart = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
constexpr const char* kPingGroupRange = "/proc/sys/net/ipv4/ping_group_range";

// Brings up `lo` in the calling thread's network namespace: 0, or the errno. System calls only
// (the rootless child uses it too).
WARREN_CHILD_CODE int loopback_up() {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  ifreq req{};
  std::memcpy(req.ifr_name, "lo", 3);
  int err = 0;
  if (ioctl(fd, SIOCGIFFLAGS, &req) != 0) err = errno;
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
  if (err == 0 && ioctl(fd, SIOCSIFFLAGS, &req) != 0) err = errno;
  close(fd);
  return err;
}

}  // namespace

// Runs on a thread of its own, which ends with the namespace it made: no caller's thread is ever
// left in it.
Result<int> new_network_namespace() {
  Result<int> made = tl::unexpected(Error{"not made"});
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      made = tl::unexpected(
          Error{std::string("cannot create a network namespace: ") + std::strerror(errno)});
      return;
    }
    if (const int err = loopback_up(); err != 0) {
      made = tl::unexpected(Error{std::string("loopback up: ") + std::strerror(err)});
      return;
    }
    // The sandbox holds no capability here: let its ids bind ports below 1024 and ping, as they
    // could in a namespace of their own. /proc/sys/net follows the calling thread's namespace.
    (void)write_control(kUnprivilegedPortStart, "0");
    (void)write_control(
        kPingGroupRange,
        std::to_string(kHostIdBase) + " " + std::to_string(kHostIdBase + kIdRanges * kIdCount - 1));
    const int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      made = tl::unexpected(Error{std::string("opening the namespace: ") + std::strerror(errno)});
    else
      made = fd;
  }).join();
  return made;
}

NetnsPool::~NetnsPool() {
  for (int fd : free_) close(fd);
}

Result<int> NetnsPool::acquire() {
  {
    std::lock_guard guard(lock_);
    if (!free_.empty()) {
      const int fd = free_.back();
      free_.pop_back();
      return fd;
    }
  }
  return new_network_namespace();
}

void NetnsPool::release(int netns) {
  std::lock_guard guard(lock_);
  if (free_.size() < keep_)
    free_.push_back(netns);
  else
    close(netns);
}

Result<std::unique_ptr<EnterNetns>> EnterNetns::enter(int netns, int home) {
  const int previous = home >= 0 ? home : open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (previous < 0)
    return tl::unexpected(
        Error{std::string("opening this thread's network namespace: ") + std::strerror(errno)});
  if (setns(netns, CLONE_NEWNET) != 0) {
    const int err = errno;
    if (home < 0) close(previous);
    return tl::unexpected(
        Error{std::string("entering the sandbox's network namespace: ") + std::strerror(err)});
  }
  return std::unique_ptr<EnterNetns>(new EnterNetns(previous, home < 0));
}

EnterNetns::~EnterNetns() {
  // A thread left in a sandbox's namespace would give that network to whatever it starts next
  // (a `--net host` sandbox included): better to stop than to go on.
  if (setns(previous_, CLONE_NEWNET) != 0) {
    std::perror("warren: cannot return to the host's network namespace");
    std::abort();
  }
  if (owned_) close(previous_);
}

namespace {

// slirp4netns gets none of this process's environment (an API key, say).
char* const kNatEnvironment[] = {const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nullptr};

// Waits up to `ms` for slirp4netns to write to its ready descriptor: true when it did.
bool nat_ready(int ready, int ms) {
  pollfd p{ready, POLLIN, 0};
  int n;
  do n = poll(&p, 1, ms);
  while (n < 0 && errno == EINTR);
  char c = 0;
  return n == 1 && read(ready, &c, 1) == 1;
}

}  // namespace

Result<std::unique_ptr<OutboundNetwork>> OutboundNetwork::start() {
  if (geteuid() != 0)
    return tl::unexpected(Error{"an outbound network needs root (rootless, use --net host)"});
  auto netns = new_network_namespace();
  if (!netns) return tl::unexpected(netns.error());
  int ready[2], stop[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    close(*netns);
    return tl::unexpected(Error{std::string("pipe: ") + std::strerror(errno)});
  }
  if (pipe2(stop, O_CLOEXEC) != 0) {
    close(*netns), close(ready[0]), close(ready[1]);
    return tl::unexpected(Error{std::string("pipe: ") + std::strerror(errno)});
  }
  // slirp4netns gets its three descriptors at numbers above every one it is given, so that no
  // dup2 overwrites another's source; they lose close-on-exec there.
  const int base = std::max({*netns, ready[1], stop[0]}) + 1;
  const std::string netns_path = "/proc/self/fd/" + std::to_string(base);
  const std::string ready_fd = "--ready-fd=" + std::to_string(base + 1);
  const std::string exit_fd = "--exit-fd=" + std::to_string(base + 2);
  std::vector<const char*> argv = {
      "slirp4netns",       "--configure",      "--mtu=65520",    "--disable-host-loopback",
      "--enable-sandbox",  "--enable-seccomp", ready_fd.c_str(), exit_fd.c_str(),
      "--netns-type=path", netns_path.c_str(), "tap0",           nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, *netns, base);
  posix_spawn_file_actions_adddup2(&actions, ready[1], base + 1);
  posix_spawn_file_actions_adddup2(&actions, stop[0], base + 2);
  // It reports each start on stdout and its warnings on stderr, which are not the run's output.
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, "slirp4netns", &actions, nullptr,
                                   const_cast<char* const*>(argv.data()), kNatEnvironment);
  posix_spawn_file_actions_destroy(&actions);
  close(ready[1]);
  close(stop[0]);
  if (spawned != 0) {
    close(*netns), close(ready[0]), close(stop[1]);
    return tl::unexpected(Error{std::string("an outbound network needs slirp4netns (the Debian "
                                            "package of that name): ") +
                                std::strerror(spawned)});
  }
  std::unique_ptr<OutboundNetwork> made(new OutboundNetwork(*netns, pid, stop[1]));
  const bool ok = nat_ready(ready[0], 10000);
  close(ready[0]);
  if (!ok) return tl::unexpected(Error{"slirp4netns did not set the sandbox's network up"});
  return made;
}

OutboundNetwork::~OutboundNetwork() {
  close(stop_);  // slirp4netns sees its exit descriptor close and ends
  int status = 0;
  while (waitpid(nat_, &status, 0) < 0 && errno == EINTR) {
  }
  close(netns_);
}

namespace {

// Writes `text` to a /proc/sys file with system calls only; false if it could not.
WARREN_CHILD_CODE bool write_sysctl(const char* path, const char* text) {
  const int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const auto length = static_cast<ssize_t>(std::strlen(text));
  const bool written = write(fd, text, static_cast<std::size_t>(length)) == length;
  close(fd);
  return written;
}

}  // namespace

WARREN_CHILD_CODE void bring_loopback_up(const ChildPlan& plan) {
  if (const int err = loopback_up(); err != 0) child_fail(plan, "loopback up", err);
  // As new_network_namespace does for a pooled namespace: ports below 1024 and ping for the
  // sandbox's ids, which will hold no capability. Its ids are all of 0..65535 as root, 0 alone
  // rootless (the wider range is refused there). /proc/sys/net follows the writer's network
  // namespace.
  (void)write_sysctl(kUnprivilegedPortStart, "0");
  static_assert(kIdCount == 65536);
  if (!write_sysctl(kPingGroupRange, "0 65535")) (void)write_sysctl(kPingGroupRange, "0 0");
}

}  // namespace warren::sandbox::detail
