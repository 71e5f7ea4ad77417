// cgroups: memory (swap 0), pids and CPU quota for one sandbox, its statistics (peak memory, CPU
// time, OOM kills), and killing everything in it. Works on cgroup v1/hybrid hosts (the machines
// this project runs on) and on v2.
//
// Everything is done on the cgroup filesystems directly (mkdir, rmdir, control files), not through
// libcgroup: through it an attach cost 150 us under a process-wide lock (libcgroup is not
// thread-safe), against 40 us without, and its set-up cost a one-shot sandbox 3.5 ms (cgroup.cpp).
// Creating and deleting a group still costs the kernel's work, so a CgroupPool reuses groups
// between sandboxes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control_file.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

struct CgroupStats {
  std::uint64_t peak_memory_bytes = 0;
  std::chrono::microseconds cpu_time{0};
  std::uint64_t oom_kills = 0;
};

class Cgroup {
 public:
  // Creates warren/<name> with the memory, pids and CPU controllers. An Error says why cgroups are
  // unusable here (the caller runs without them and says so).
  static Result<std::unique_ptr<Cgroup>> create(const std::string& name);
  ~Cgroup();  // kills what is left and deletes the group
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  // Sets the limits (only those that differ from what the group has) and starts the statistics
  // afresh, so that a reused group reports only its new sandbox.
  Result<void> prepare(const Limits& limits);
  Result<void> attach(pid_t pid);
  // v1: the `tasks` file of each hierarchy, opened by this (host root) process, for the sandbox's
  // PID 1 to write "0" into: a task that moves itself by its `tasks` file skips the kernel's
  // process-wide threadgroup lock, whose RCU wait made one start in a hundred take 15 ms. Empty
  // on v2, where attach() is used.
  // The descriptors stay the group's.
  Result<std::vector<int>> self_attach_files();
  CgroupStats stats();
  // False when the group's statistics cannot start afresh for another sandbox.
  bool reusable() const { return reusable_; }
  // SIGKILL to every process in the group until it is empty; false if it would not empty.
  bool kill_all();
  // The processes in the group, as the host numbers them.
  std::vector<pid_t> processes();

 private:
  Cgroup() = default;

  bool unified_ = false;                               // cgroup v2
  std::string memory_, pids_, cpu_, cpuacct_;          // the group's directory in each hierarchy
  std::vector<std::string> hierarchies_;               // distinct directories, for attach
  std::string memory_limit_, pids_limit_, cpu_quota_;  // what is set now
  // Counters that only count up, as they were when this sandbox's statistics started.
  std::uint64_t oom_kills_before_ = 0;
  std::uint64_t cpu_usec_before_ = 0;  // v2
  bool reusable_ = true;
  // Read or written at every start and end: kept open (v1 / v2 files).
  ControlFile peak_;                                 // memory.max_usage_in_bytes / memory.peak
  ControlFile oom_;                                  // memory.oom_control / memory.events
  ControlFile cpu_usage_;                            // cpuacct.usage / cpu.stat
  std::vector<std::unique_ptr<ControlFile>> tasks_;  // v1: `tasks` of each hierarchy
};

// Groups ready for reuse. A group goes back to the pool only once it is empty; at most `keep` are
// kept, the rest deleted.
//
// Groups are named warren/<pid namespace>-<pid>-<pool>-<count>. A supervisor killed with SIGKILL
// cannot delete its groups, so the first group a pool creates is preceded by a sweep that deletes
// the groups of supervisors of this pid namespace that no longer exist. Another namespace's
// numbers mean nothing here: its groups are left alone.
class CgroupPool {
 public:
  explicit CgroupPool(std::size_t keep);
  CgroupPool(const CgroupPool&) = delete;
  CgroupPool& operator=(const CgroupPool&) = delete;

  Result<std::unique_ptr<Cgroup>> acquire(const Limits& limits);
  void release(std::unique_ptr<Cgroup> group);

 private:
  std::size_t keep_;
  std::string pid_namespace_;  // this process's, as its inode number: the first part of names
  std::once_flag swept_;
  std::mutex lock_;
  std::vector<std::unique_ptr<Cgroup>> free_;
  std::uint64_t created_ = 0;
};

}  // namespace warren::sandbox::detail
