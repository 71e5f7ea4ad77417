// cgroups through libcgroup: memory (swap 0), pids and CPU quota for one sandbox, its statistics
// (peak memory, CPU time, OOM kills), and killing everything in it. Works on cgroup v1/hybrid
// hosts (the machines this project runs on) and on v2.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "warren/sandbox/sandbox.hpp"

struct cgroup;  // libcgroup

namespace warren::sandbox::detail {

struct CgroupStats {
  std::uint64_t peak_memory_bytes = 0;
  std::chrono::microseconds cpu_time{0};
  std::uint64_t oom_kills = 0;
};

class Cgroup {
 public:
  // Creates warren/<name> with `limits` applied. An Error says why cgroups are unusable here
  // (the caller runs without them and says so).
  static Result<std::unique_ptr<Cgroup>> create(const std::string& name, const Limits& limits);
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  Result<void> attach(pid_t pid);
  CgroupStats stats() const;
  // SIGKILL to every process in the group until it is empty (bounded wait).
  void kill_all();
  // The processes in the group, as the host numbers them.
  std::vector<pid_t> processes() const;

 private:
  Cgroup(struct cgroup* group, std::string name, bool unified);
  std::string file(const char* controller, const char* name) const;

  struct cgroup* group_;
  std::string name_;
  bool unified_;  // cgroup v2
};

}  // namespace warren::sandbox::detail
