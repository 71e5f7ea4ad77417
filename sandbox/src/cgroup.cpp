#include "cgroup.hpp"

#include <libcgroup.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

namespace warren::sandbox::detail {

namespace {

// libcgroup keeps process-wide state and does not promise thread safety: every call into it is
// made under this lock (sandboxes start from many threads at once).
std::mutex& libcgroup_lock() {
  static std::mutex lock;
  return lock;
}

// libcgroup keeps its mount table in library state: it is initialised once per process.
int init_libcgroup() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = cgroup_init(); });
  return rc;
}

bool is_unified() {
  return access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
}

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "key value" lines (memory.oom_control, memory.events, cpu.stat).
std::uint64_t read_keyed(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

tl::unexpected<Error> cg_error(const std::string& what, int rc) {
  return tl::unexpected(Error{what + ": " + cgroup_strerror(rc)});
}

}  // namespace

Cgroup::Cgroup(struct cgroup* group, std::string name, bool unified)
    : group_(group), name_(std::move(name)), unified_(unified) {}

Result<std::unique_ptr<Cgroup>> Cgroup::create(const std::string& name, const Limits& limits) {
  if (const int rc = init_libcgroup(); rc != 0) return cg_error("cgroup_init", rc);
  std::lock_guard guard(libcgroup_lock());
  const bool unified = is_unified();
  const std::string path = "warren/" + name;
  struct cgroup* group = cgroup_new_cgroup(path.c_str());
  if (!group) return tl::unexpected(Error{"cgroup_new_cgroup failed"});
  std::unique_ptr<Cgroup> cg(new Cgroup(group, path, unified));

  struct cgroup_controller* memory = cgroup_add_controller(group, "memory");
  struct cgroup_controller* pids = cgroup_add_controller(group, "pids");
  struct cgroup_controller* cpu = cgroup_add_controller(group, "cpu");
  if (!memory || !pids || !cpu) return tl::unexpected(Error{"cgroup_add_controller failed"});
  if (!unified) cgroup_add_controller(group, "cpuacct");  // CPU time on v1

  const std::string memory_limit =
      limits.memory_bytes ? std::to_string(limits.memory_bytes) : (unified ? "max" : "-1");
  const std::string pids_limit = limits.pids ? std::to_string(limits.pids) : "max";
  const long period = 100000;
  const long quota = limits.cpus > 0 ? std::lround(limits.cpus * period) : -1;
  if (unified) {
    cgroup_add_value_string(memory, "memory.max", memory_limit.c_str());
    cgroup_add_value_string(memory, "memory.swap.max", "0");
    cgroup_add_value_string(pids, "pids.max", pids_limit.c_str());
    const std::string cpu_max =
        (quota > 0 ? std::to_string(quota) : std::string("max")) + " " + std::to_string(period);
    cgroup_add_value_string(cpu, "cpu.max", cpu_max.c_str());
  } else {
    cgroup_add_value_string(memory, "memory.limit_in_bytes", memory_limit.c_str());
    // Swap 0: the memory+swap limit equals the memory limit (when swap accounting exists).
    char* mount = nullptr;
    if (cgroup_get_subsys_mount_point("memory", &mount) == 0) {
      if (access((std::string(mount) + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
        cgroup_add_value_string(memory, "memory.memsw.limit_in_bytes", memory_limit.c_str());
      free(mount);
    }
    cgroup_add_value_string(pids, "pids.max", pids_limit.c_str());
    cgroup_add_value_string(cpu, "cpu.cfs_period_us", std::to_string(period).c_str());
    cgroup_add_value_string(cpu, "cpu.cfs_quota_us", std::to_string(quota).c_str());
  }
  if (const int rc = cgroup_create_cgroup(group, 0); rc != 0)
    return cg_error("creating cgroup " + path, rc);
  return cg;
}

Cgroup::~Cgroup() {
  kill_all();
  std::lock_guard guard(libcgroup_lock());
  cgroup_delete_cgroup(group_, 0);
  cgroup_free(&group_);
}

Result<void> Cgroup::attach(pid_t pid) {
  std::lock_guard guard(libcgroup_lock());
  if (const int rc = cgroup_attach_task_pid(group_, pid); rc != 0)
    return cg_error("attaching to cgroup " + name_, rc);
  return {};
}

std::string Cgroup::file(const char* controller, const char* name) const {
  std::lock_guard guard(libcgroup_lock());
  char* mount = nullptr;
  if (cgroup_get_subsys_mount_point(controller, &mount) != 0 || !mount) return {};
  std::string path = std::string(mount) + "/" + name_ + "/" + name;
  free(mount);
  return path;
}

CgroupStats Cgroup::stats() const {
  CgroupStats s;
  if (unified_) {
    s.peak_memory_bytes =
        std::strtoull(read_first_line(file("memory", "memory.peak")).c_str(), nullptr, 10);
    s.oom_kills = read_keyed(file("memory", "memory.events"), "oom_kill");
    s.cpu_time = std::chrono::microseconds(read_keyed(file("cpu", "cpu.stat"), "usage_usec"));
  } else {
    s.peak_memory_bytes = std::strtoull(
        read_first_line(file("memory", "memory.max_usage_in_bytes")).c_str(), nullptr, 10);
    s.oom_kills = read_keyed(file("memory", "memory.oom_control"), "oom_kill");
    s.cpu_time = std::chrono::microseconds(
        std::strtoull(read_first_line(file("cpuacct", "cpuacct.usage")).c_str(), nullptr, 10) /
        1000);
  }
  return s;
}

std::vector<pid_t> Cgroup::processes() const {
  std::vector<pid_t> pids;
  std::ifstream procs(file("pids", "cgroup.procs"));
  for (pid_t pid = 0; procs >> pid;) pids.push_back(pid);
  return pids;
}

void Cgroup::kill_all() {
  // Processes may fork while being killed; a few rounds settle it (pids.max bounds the count).
  for (int round = 0; round < 100; ++round) {
    std::ifstream procs(file("pids", "cgroup.procs"));
    pid_t pid = 0;
    bool any = false;
    while (procs >> pid) {
      any = true;
      kill(pid, SIGKILL);
    }
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace warren::sandbox::detail
