// Recycling: one sandbox, its namespaces and mounts, serving one command after another of the
// same policy, each as if the sandbox were new.
//
// A new sandbox costs most of its start in the kernel: five namespaces, eighteen mounts and their
// teardown (about 2 ms of CPU on the 2-core machines this project runs on, where /bin/true alone
// takes 1). Once a command has ended, PID 1 kills every process left in the sandbox, and checks
// that nothing the command did can reach the next one:
//   - processes: none are left (kill(-1) until there is nothing to signal, and every one reaped);
//   - files: the root tmpfs is as it was after setup, entry by entry (inode, type, mode, owner,
//     links, size, times, extended attributes), and it holds no more inodes or blocks than then;
//     so are the devpts instance's root and ptmx, which the command owns. Other filesystems (the
//     read-only system binds, /proc, /dev, the host's workspace and mounts) are skipped: they are
//     either read-only or the host's own;
//   - System V IPC objects and POSIX message queues: there are none (they outlive their
//     processes, so a command that leaves one ends its sandbox);
//   - PID 1's resource limits, which the next command inherits, are as they were.
// Nothing else a command can change outlives its processes: it holds no capability (mounts,
// hostname, network configuration and the bounding set are out of its reach), seccomp denies the
// mount API and keyrings, PID 1 cannot be traced or written (it makes itself undumpable), and the
// cgroup's statistics start afresh. A sandbox that fails any check, that timed out, whose command
// was killed for memory or could not be set up, is not recycled: it ends, and the next command gets
// a new one. Only sandboxes the spawner started are recycled: an in-process PID 1 is a copy of the
// whole supervisor and dies with the thread that started it.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "plan.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// ---- PID 1's side (system calls only, as the rest of PID 1)

// What a new sandbox looks like, as PID 1 records it after setup and checks it after each command.
struct AsNew {
  // The root tmpfs, entry by entry with each entry's path, and the devpts instance's root and
  // ptmx (which belong to the sandbox's root, so a command may chmod them).
  struct Entry {
    std::uint64_t ino = 0, size = 0;
    std::uint32_t mode = 0, uid = 0, gid = 0, nlink = 0;
    std::int64_t mtime_s = 0, ctime_s = 0;
    std::uint32_t mtime_ns = 0, ctime_ns = 0;
    std::int64_t xattr_bytes = 0;  // of attribute names (directories; SELinux labels them all)
    std::uint32_t path = 0;        // offset into `paths`
  };
  static constexpr int kMaxEntries = 64;
  Entry entries[kMaxEntries];
  int count = 0;
  char paths[4096];
  std::uint32_t paths_used = 0;
  std::uint64_t free_inodes = 0, free_blocks = 0;  // of the root tmpfs
  // PID 1's own resource limits, which every command inherits: a command has PID 1's ids and may
  // lower them (prlimit needs no capability for that).
  rlimit limits[RLIM_NLIMITS];
  // The IPC namespace's objects: System V ones are counted by the *ctl INFO calls; POSIX message
  // queues are listed through a detached mqueue mount whose directory only PID 1 holds open (the
  // command never sees it).
  int queues = -1;
};

// False when the sandbox cannot be described (too many entries; a regular file, fifo or socket
// on the root; no way to watch message queues): such a sandbox is not recycled.
WARREN_CHILD_CODE bool record_as_new(AsNew& state);
// Whether the sandbox is as recorded: every entry at its path unchanged (a new entry anywhere
// takes an inode and changes its directory's times, so the entries need not be listed again), as
// many free inodes and blocks, the same limits, and no IPC object.
WARREN_CHILD_CODE bool still_as_new(const AsNew& state);

// SIGKILL to every process of the pid namespace but PID 1, until none is left, each one reaped.
WARREN_CHILD_CODE void end_every_process();

// The next command of a recycled sandbox, as received: the strings live in `buffer`, which the
// first command maps and the next ones reuse. Descriptors: error, status, stdin, stdout, stderr
// (the command's pipe ends).
struct NextCommand {
  char* buffer = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* search_path = nullptr;
  static constexpr int kFds = 5;
  int fds[kFds] = {-1, -1, -1, -1, -1};
};
// False when the supervisor is gone (the socket closed) or sent something that is not a command.
WARREN_CHILD_CODE bool receive_command(int socket, NextCommand& next);

// ---- The supervisor's side

// The largest command message: argv and environment together (a larger command starts a new
// sandbox, which takes its command in the plan).
constexpr std::size_t kMaxCommandBytes = 60 * 1024;
constexpr std::size_t kMaxCommandPointers = kMaxCommandBytes / 2 + 2;

// argv, envp and the search path as one message; empty when over kMaxCommandBytes or when argv is
// empty.
std::string encode_command(const std::vector<char*>& argv, const std::vector<char*>& envp,
                           const char* search_path);
// Sends it with the five descriptors (in NextCommand's order); false if PID 1 is gone.
bool send_command(int socket, const std::string& message, const int (&fds)[NextCommand::kFds]);

// What must be equal for a sandbox to serve another command: everything PID 1 set up (filesystem,
// network, hostname, cgroup limits, rlimits and seccomp policy); argv and environment travel with
// each command. Empty for what is never recycled: an image root or a snapshot (an overlay is not
// walked), and terminals.
std::string recycle_key(const Policy& policy, const Command& command);

// A host path a sandbox has bound, as it was then: a sandbox is reused only while each path still
// names the same, undeleted, file (a workspace deleted and made again is a different directory,
// which the old sandbox does not have).
class HostPathCheck {
 public:
  explicit HostPathCheck(const std::string& path);
  HostPathCheck(const HostPathCheck&) = delete;
  HostPathCheck& operator=(const HostPathCheck&) = delete;
  ~HostPathCheck();
  bool unchanged() const;

 private:
  std::string path_;
  int fd_ = -1;  // O_PATH
};

struct Launched;

// Recycled sandboxes waiting for a command, by key. At most `keep` are kept (the oldest goes
// first), none for longer than `idle_for` (a thread of its own ends them when they are due);
// closed, it keeps none. Thread-safe.
class WarmSandboxes {
 public:
  WarmSandboxes(std::size_t keep, std::chrono::seconds idle_for);
  ~WarmSandboxes();
  WarmSandboxes(const WarmSandboxes&) = delete;
  WarmSandboxes& operator=(const WarmSandboxes&) = delete;

  std::size_t keep() const { return keep_; }
  // A waiting sandbox for `key` whose PID 1 is alive and whose host paths are unchanged, or null.
  std::unique_ptr<Launched> take(const std::string& key);
  void put(std::unique_ptr<Launched> sandbox);
  // Ends every waiting sandbox; those put back later end at once.
  void close();

 private:
  // Removes from `waiting_` what is too old or too many; the caller ends them outside the lock.
  void expire(std::vector<std::unique_ptr<Launched>>& ended);
  // The expiry thread: sleeps until the oldest waiting sandbox is due, ends it, until closed.
  void expire_when_due();

  const std::size_t keep_;
  const std::chrono::seconds idle_for_;
  std::mutex lock_;
  std::condition_variable changed_;  // a sandbox came to wait, or the pool closed
  bool closed_ = false;
  std::deque<std::unique_ptr<Launched>> waiting_;  // oldest first
  std::thread expiry_;                             // started when `keep` > 0
};

}  // namespace warren::sandbox::detail
