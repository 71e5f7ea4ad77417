#include "cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "control_file.hpp"

namespace warren::sandbox::detail {

namespace {

// The value after `key` in "key value" lines (memory.oom_control, memory.events, cpu.stat).
std::uint64_t keyed_value(const std::string& text, const std::string& key) {
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    if (text.compare(at, key.size(), key) == 0 && at + key.size() < end &&
        text[at + key.size()] == ' ')
      return std::strtoull(text.c_str() + at + key.size() + 1, nullptr, 10);
    at = end + 1;
  }
  return 0;
}

std::uint64_t number(const std::string& text) {
  return std::strtoull(text.c_str(), nullptr, 10);
}

// The controllers a sandbox's group uses: cpuacct only on v1, where CPU time is its own.
constexpr const char* kControllers[] = {"memory", "pids", "cpu", "cpuacct"};

// The fields of `text` split at any of `separators`, empty ones skipped.
std::vector<std::string_view> split(std::string_view text, std::string_view separators) {
  std::vector<std::string_view> fields;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t end = std::min(text.find_first_of(separators, at), text.size());
    if (end > at) fields.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  return fields;
}

// Where each controller's hierarchy is mounted, from /proc/self/mountinfo: a v1 hierarchy lists
// its controllers in its super options ("rw,cpu,cpuacct"); a v2 one in its cgroup.controllers
// (cpuacct is then cpu). v1 wins, as on hybrid hosts whose /sys/fs/cgroup/unified holds none.
// Split by hand: with a stream per line this took a one-shot `warren sandbox exec` 2% of its
// time (perf, 2026-12-06).
std::map<std::string, std::string> controller_mounts() {
  std::map<std::string, std::string> v1, v2;
  std::string mountinfo;
  if (std::ifstream in{"/proc/self/mountinfo"})
    mountinfo.assign(std::istreambuf_iterator<char>(in), {});
  for (std::string_view line : split(mountinfo, "\n")) {
    // "id parent major:minor root mount-point options [optional...] - type source super-options"
    const std::size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    const std::vector<std::string_view> head = split(line.substr(0, dash), " ");
    const std::vector<std::string_view> tail = split(line.substr(dash + 3), " ");
    if (head.size() < 5 || tail.size() < 3) continue;
    const std::string point(head[4]);
    if (tail[0] == "cgroup") {
      for (std::string_view option : split(tail[2], ","))
        for (const char* controller : kControllers)
          if (option == controller) v1.emplace(controller, point);
    } else if (tail[0] == "cgroup2") {
      const std::string listed = read_control(point + "/cgroup.controllers");
      for (std::string_view controller : split(listed, " \n"))
        for (const char* wanted : {"memory", "pids", "cpu"})
          if (controller == wanted) v2.emplace(wanted, point);
      if (v2.contains("cpu")) v2.emplace("cpuacct", v2["cpu"]);
    }
  }
  for (auto& [controller, point] : v2) v1.emplace(controller, point);
  return v1;
}

// On v2 a child gets a controller only when its parent lists it in cgroup.subtree_control: the
// hierarchy's root (which systemd fills on most v2 hosts and nothing fills on a bare one, a
// container's or VM's init) and warren/.
Result<void> enable_v2_controllers(const std::string& dir) {
  const std::string listed = read_control(dir + "/cgroup.subtree_control");
  std::set<std::string_view> have;
  for (std::string_view controller : split(listed, " \n")) have.insert(controller);
  std::string wanted;
  for (const char* controller : {"memory", "pids", "cpu"})
    if (!have.contains(controller)) wanted += std::string(wanted.empty() ? "+" : " +") + controller;
  if (wanted.empty()) return {};
  return write_control(dir + "/cgroup.subtree_control", wanted);
}

// What a process learns of the host's cgroups once, before its first group: where the hierarchies
// are, whether the memory controller's is the unified one (on a v2 host, and on a hybrid host
// whose controllers were moved to /sys/fs/cgroup/unified), and warren/ made in each, its
// controllers enabled on v2.
//
// The groups are made and removed with mkdir and rmdir, not libcgroup: its cgroup_init (clearing
// its mount tables) and cgroup_create_cgroup (a chown of every control file) cost a one-shot
// `warren sandbox exec` 3.5 ms of its 24 (perf, 2026-12-05), more than the sandbox's namespaces.
struct HostCgroups {
  Result<void> ready;
  bool unified = false;
  std::map<std::string, std::string> mounts;  // controller -> hierarchy
};

const HostCgroups& host_cgroups() {
  static const HostCgroups host = [] {
    HostCgroups h;
    h.mounts = controller_mounts();
    for (const char* controller : kControllers)
      if (!h.mounts.contains(controller)) {
        h.ready = tl::unexpected(
            Error{std::string("no cgroup hierarchy has the ") + controller + " controller"});
        return h;
      }
    const std::string& memory = h.mounts["memory"];
    h.unified = access((memory + "/cgroup.controllers").c_str(), F_OK) == 0;
    if (h.unified) h.ready = enable_v2_controllers(memory);
    const std::set<std::string> hierarchies = [&] {
      std::set<std::string> points;
      for (const auto& [controller, point] : h.mounts) points.insert(point);
      return points;
    }();
    for (const std::string& point : hierarchies) {
      if (!h.ready) break;
      const std::string warren = point + "/warren";
      if (mkdir(warren.c_str(), 0755) != 0 && errno != EEXIST)
        h.ready = tl::unexpected(Error{"creating " + warren + ": " + std::strerror(errno)});
      else if (h.unified)
        h.ready = enable_v2_controllers(warren);
    }
    return h;
  }();
  return host;
}

// This process's pid namespace, as its inode number.
std::string pid_namespace() {
  struct stat st {};
  return stat("/proc/self/ns/pid", &st) == 0 ? std::to_string(st.st_ino) : "0";
}

// Deletes the groups under warren/ that were made in pid namespace `pidns` by processes that have
// exited. A group still holding processes (which PID 1's death signal should have ended) has
// them killed first, by the Cgroup destructor.
void sweep_stale_groups(const std::string& pidns) {
  if (!host_cgroups().ready) return;
  std::vector<std::string> stale;
  std::error_code ec;
  const std::string parent = host_cgroups().mounts.at("pids") + "/warren";
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename();
    if (!entry.is_directory() || !name.starts_with(pidns + "-")) continue;
    const long pid = std::strtol(name.c_str() + pidns.size() + 1, nullptr, 10);
    if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) stale.push_back(name);
  }
  for (const std::string& name : stale) (void)Cgroup::create(name);  // made whole, then deleted
}

}  // namespace

Result<std::unique_ptr<Cgroup>> Cgroup::create(const std::string& name) {
  const HostCgroups& host = host_cgroups();
  if (!host.ready) return tl::unexpected(host.ready.error());
  std::unique_ptr<Cgroup> cg(new Cgroup());
  cg->unified_ = host.unified;
  const std::string path = "/warren/" + name;
  cg->memory_ = host.mounts.at("memory") + path;
  cg->pids_ = host.mounts.at("pids") + path;
  cg->cpu_ = host.mounts.at("cpu") + path;
  cg->cpuacct_ = host.mounts.at("cpuacct") + path;
  for (const std::string* dir : {&cg->memory_, &cg->pids_, &cg->cpu_, &cg->cpuacct_}) {
    if (std::find(cg->hierarchies_.begin(), cg->hierarchies_.end(), *dir) != cg->hierarchies_.end())
      continue;
    // An existing group (a stale one being swept) is taken over, then deleted with this one.
    if (mkdir(dir->c_str(), 0755) != 0 && errno != EEXIST)
      return tl::unexpected(Error{"creating cgroup " + *dir + ": " + std::strerror(errno)});
    cg->hierarchies_.push_back(*dir);  // from here on the destructor removes it
  }
  const bool v1 = !cg->unified_;
  cg->peak_.name(cg->memory_ + (v1 ? "/memory.max_usage_in_bytes" : "/memory.peak"), true);
  cg->oom_.name(cg->memory_ + (v1 ? "/memory.oom_control" : "/memory.events"), false);
  cg->cpu_usage_.name(v1 ? cg->cpuacct_ + "/cpuacct.usage" : cg->cpu_ + "/cpu.stat", v1);
  if (v1)
    for (const std::string& dir : cg->hierarchies_) {
      cg->tasks_.push_back(std::make_unique<ControlFile>());
      cg->tasks_.back()->name(dir + "/tasks", true);
    }
  return cg;
}

Cgroup::~Cgroup() {
  if (hierarchies_.empty()) return;
  kill_all();
  for (const std::string& dir : hierarchies_) rmdir(dir.c_str());
}

Result<void> Cgroup::prepare(const Limits& limits) {
  const std::string memory = limits.memory_bytes ? std::to_string(limits.memory_bytes)
                                                 : (unified_ ? std::string("max") : "-1");
  const std::string pids = limits.pids ? std::to_string(limits.pids) : "max";
  const long period = 100000;
  const long quota = limits.cpus > 0 ? std::lround(limits.cpus * period) : -1;
  const std::string cpu = unified_ ? (quota > 0 ? std::to_string(quota) : std::string("max")) +
                                         " " + std::to_string(period)
                                   : std::to_string(quota);
  if (memory != memory_limit_) {
    if (unified_) {
      if (auto r = write_control(memory_ + "/memory.max", memory); !r) return r;
      if (auto r = write_control(memory_ + "/memory.swap.max", "0"); !r) return r;
    } else {
      // memsw (memory + swap) must stay >= memory: raise it first when the limit goes up, and
      // lower it last when it goes down. Equal, they mean swap 0. Missing without swap accounting.
      const std::string memsw = memory_ + "/memory.memsw.limit_in_bytes";
      const bool has_memsw = access(memsw.c_str(), F_OK) == 0;
      const bool raising = memory == "-1" || (memory_limit_ != "-1" && !memory_limit_.empty() &&
                                              number(memory) > number(memory_limit_));
      if (has_memsw && raising)
        if (auto r = write_control(memsw, memory); !r) return r;
      if (auto r = write_control(memory_ + "/memory.limit_in_bytes", memory); !r) return r;
      if (has_memsw && !raising)
        if (auto r = write_control(memsw, memory); !r) return r;
    }
    memory_limit_ = memory;
  }
  if (pids != pids_limit_) {
    if (auto r = write_control(pids_ + "/pids.max", pids); !r) return r;
    pids_limit_ = pids;
  }
  if (cpu != cpu_quota_) {
    if (unified_) {
      if (auto r = write_control(cpu_ + "/cpu.max", cpu); !r) return r;
    } else {
      if (auto r = write_control(cpu_ + "/cpu.cfs_period_us", std::to_string(period)); !r) return r;
      if (auto r = write_control(cpu_ + "/cpu.cfs_quota_us", cpu); !r) return r;
    }
    cpu_quota_ = cpu;
  }
  // Statistics start afresh. v1 resets peak and CPU time on a write. v2 resets the peak as seen
  // through the descriptor written to (Linux 6.12 and later; before, a group whose peak cannot be
  // reset is not reused). Counters that only count up (OOM kills, v2's CPU time) are subtracted.
  if (unified_) {
    reusable_ = peak_.write("reset").has_value();
    cpu_usec_before_ = keyed_value(cpu_usage_.read(), "usage_usec");
  } else {
    if (auto r = peak_.write("0"); !r) return r;
    if (auto r = cpu_usage_.write("0"); !r) return r;
  }
  oom_kills_before_ = keyed_value(oom_.read(), "oom_kill");
  return {};
}

Result<void> Cgroup::attach(pid_t pid) {
  const std::string text = std::to_string(pid);
  for (const std::string& dir : hierarchies_)
    if (auto r = write_control(dir + "/cgroup.procs", text); !r) return r;
  return {};
}

Result<std::vector<int>> Cgroup::self_attach_files() {
  std::vector<int> fds;
  for (const auto& tasks : tasks_) {
    if (tasks->fd() < 0)
      return tl::unexpected(
          Error{std::string("opening a cgroup tasks file: ") + std::strerror(errno)});
    fds.push_back(tasks->fd());
  }
  return fds;
}

CgroupStats Cgroup::stats() {
  CgroupStats s;
  s.peak_memory_bytes = number(peak_.read());
  s.oom_kills = keyed_value(oom_.read(), "oom_kill");
  s.cpu_time = unified_ ? std::chrono::microseconds(keyed_value(cpu_usage_.read(), "usage_usec") -
                                                    cpu_usec_before_)
                        : std::chrono::microseconds(number(cpu_usage_.read()) / 1000);
  s.oom_kills -= std::min(s.oom_kills, oom_kills_before_);
  return s;
}

std::vector<pid_t> Cgroup::processes() {
  std::vector<pid_t> pids;
  // Opened afresh each time: v1 builds a cgroup.procs list when the file is opened and serves
  // that list to every later read of the same descriptor.
  ControlFile procs;
  procs.name(pids_ + "/cgroup.procs", false);
  const std::string text = procs.read();
  for (const char* p = text.c_str(); *p;) {
    char* end = nullptr;
    const long pid = std::strtol(p, &end, 10);
    if (end == p) break;
    pids.push_back(static_cast<pid_t>(pid));
    p = end;
  }
  return pids;
}

bool Cgroup::kill_all() {
  // Processes may fork while being killed; a few rounds settle it (pids.max bounds the count).
  for (int round = 0; round < 200; ++round) {
    const std::vector<pid_t> pids = processes();
    if (pids.empty()) return true;
    for (pid_t pid : pids) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::microseconds(round < 10 ? 100 : 1000));
  }
  return processes().empty();
}

CgroupPool::CgroupPool(std::size_t keep) : keep_(keep), pid_namespace_(pid_namespace()) {}

Result<std::unique_ptr<Cgroup>> CgroupPool::acquire(const Limits& limits) {
  std::unique_ptr<Cgroup> group;
  std::string name;
  {
    std::lock_guard guard(lock_);
    if (!free_.empty()) {
      group = std::move(free_.back());
      free_.pop_back();
    } else {
      // Unique among the live pools of every process: pid namespace, pid, this pool, a count.
      name = pid_namespace_ + "-" + std::to_string(getpid()) + "-" +
             std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" +
             std::to_string(++created_);
    }
  }
  if (!group) {
    std::call_once(swept_, [this] { sweep_stale_groups(pid_namespace_); });
    auto created = Cgroup::create(name);
    if (!created) return tl::unexpected(created.error());
    group = std::move(*created);
  }
  if (auto prepared = group->prepare(limits); !prepared) return tl::unexpected(prepared.error());
  return group;
}

void CgroupPool::release(std::unique_ptr<Cgroup> group) {
  // A group that still holds a process is never handed to another sandbox.
  if (!group || !group->reusable() || !group->kill_all()) return;
  std::lock_guard guard(lock_);
  if (free_.size() < keep_) free_.push_back(std::move(group));
}

}  // namespace warren::sandbox::detail
