// Starting a sandbox (shared by one-shot runs and sessions): the plan, the clone of its PID 1
// into new namespaces, id maps, cgroup, and the supervisor's ends of its pipes.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cgroup.hpp"
#include "net.hpp"
#include "recycle.hpp"
#include "resources.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

using Clock = std::chrono::steady_clock;

// A pipe whose ends close themselves.
struct Pipe {
  Pipe() = default;
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  int read = -1, write = -1;
  ~Pipe() { close_both(); }
  bool open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    read = fds[0];
    write = fds[1];
    return true;
  }
  // A socket pair in its place (messages, with descriptors): `read` is the child's end.
  bool open_socket() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) return false;
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

// A running sandbox. Destroying it kills whatever is left in it.
struct Launched {
  Launched() = default;
  Launched(const Launched&) = delete;
  Launched& operator=(const Launched&) = delete;
  ~Launched();

  void kill() const;  // SIGKILL to PID 1: the kernel ends the whole pid namespace with it
  // Reaps PID 1 once it has exited (pidfd readable) and returns how it ended.
  void reap();

  pid_t pid = -1;  // PID 1, as the host sees it
  int pidfd = -1;
  Pipe in, out, err, error, status;  // supervisor ends
  std::shared_ptr<Resources> resources;
  std::unique_ptr<Cgroup> cgroup;  // null when cgroups are unusable (rootless); back to the pool
  int netns = -1;                  // a pooled network namespace, back to the pool
  // Network::Outbound's namespace and NAT, which end after PID 1 (members go after the body).
  std::unique_ptr<OutboundNetwork> outbound;
  std::shared_ptr<const NetworkMember> member;  // Network::Private's
  Clock::time_point started;
  std::vector<std::string> notes;
  bool reaped = false;
  unsigned host_ids = 0;         // the host id of the sandbox's root (0 rootless)
  std::unique_ptr<IdRange> ids;  // the range taken for this sandbox alone, if it needed one

  // Recycling (recycle.hpp): set when PID 1 serves another command after this one. `control` is
  // the supervisor's end of the socket PID 1 takes commands from.
  std::string recycle_key;
  int control = -1;
  std::vector<std::unique_ptr<HostPathCheck>> host_paths;
  Clock::time_point idle_since;
  bool recycled = false;  // the command now running is not this sandbox's first
};

// `recycle_key` (recycle.hpp's, for this policy and command) not empty: PID 1 stays for another
// command when this one leaves the sandbox as new. `compiled`: the policy's seccomp program when
// the caller has it already (else it is looked up).
Result<std::unique_ptr<Launched>> launch(std::shared_ptr<Resources> resources, const Policy& policy,
                                         const Command& command, std::string recycle_key = {},
                                         std::shared_ptr<const SeccompProgram> compiled = nullptr);

// The command as a recycled sandbox's PID 1 takes it (recycle.hpp's encode_command); empty when it
// cannot be sent (too long, or no argv).
std::string command_message(const Policy& policy, const Command& command);

// Runs a command, as `message`, in a recycled sandbox `l` that was launched with the same key:
// new pipes, the cgroup's statistics started afresh, and the message sent to PID 1.
Result<void> relaunch(Launched& l, const Policy& policy, const std::string& message);

}  // namespace warren::sandbox::detail
