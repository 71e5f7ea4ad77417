#include "net.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "control_file.hpp"
#include "user.hpp"

namespace warren::sandbox::detail {

namespace {

// The two settings a sandbox's network gets, whoever makes it (make_namespace, bring_loopback_up).
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

// Runs on a thread of its own, which ends with the namespace it made: no caller's thread is ever
// left in it.
Result<int> make_namespace() {
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

}  // namespace

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
  return make_namespace();
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
  // As make_namespace does for a pooled namespace: ports below 1024 and ping for the sandbox's
  // ids, which will hold no capability. Its ids are all of 0..65535 as root, 0 alone rootless
  // (the wider range is refused there). /proc/sys/net follows the writer's network namespace.
  (void)write_sysctl(kUnprivilegedPortStart, "0");
  static_assert(kIdCount == 65536);
  if (!write_sysctl(kPingGroupRange, "0 65535")) (void)write_sysctl(kPingGroupRange, "0 0");
}

}  // namespace warren::sandbox::detail
