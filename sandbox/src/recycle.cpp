// Recycling a sandbox for the next command: PID 1's checks and its side of the command socket,
// the supervisor's side, and the pool of waiting sandboxes. Why it is safe: recycle.hpp.
#include "recycle.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "launch.hpp"

namespace warren::sandbox::detail {

namespace {

constexpr std::uint32_t kCommandMagic = 0x57435231;  // "WCR1"
constexpr int kMaxDepth = 8;

struct CommandHeader {
  std::uint32_t magic = kCommandMagic;
  std::uint32_t argc = 0, envc = 0;
  std::uint32_t bytes = 0;  // of strings that follow, each NUL-terminated: argv, envp, search path
};

WARREN_CHILD_CODE bool same_entry(const AsNew::Entry& x, const struct statx& st) {
  return x.ino == st.stx_ino && x.size == st.stx_size && x.mode == st.stx_mode &&
         x.uid == st.stx_uid && x.gid == st.stx_gid && x.nlink == st.stx_nlink &&
         x.mtime_s == st.stx_mtime.tv_sec && x.mtime_ns == st.stx_mtime.tv_nsec &&
         x.ctime_s == st.stx_ctime.tv_sec && x.ctime_ns == st.stx_ctime.tv_nsec;
}

// Adds an entry: `name` under the entry `parent`'s path, or the absolute path `name` when
// `parent` is -1. Its index, or -1 when the state is full.
WARREN_CHILD_CODE int add_entry(AsNew& state, const struct statx& st, int parent,
                                const char* name) {
  const char* base = parent < 0 ? "" : state.paths + state.entries[parent].path;
  const std::size_t base_len = std::strlen(base), name_len = std::strlen(name);
  if (state.count == AsNew::kMaxEntries ||
      state.paths_used + base_len + 1 + name_len + 1 > sizeof state.paths)
    return -1;
  // "/dir" + "name": "/dir/name"; "/" + "name": "/name"; "" + "/abs": "/abs".
  char* path = state.paths + state.paths_used;
  std::memcpy(path, base, base_len);
  std::size_t len = base_len;
  if (len > 1) path[len++] = '/';
  std::memcpy(path + len, name, name_len);
  len += name_len;
  path[len] = '\0';
  AsNew::Entry& e = state.entries[state.count];
  e.ino = st.stx_ino;
  e.size = st.stx_size;
  e.mode = st.stx_mode;
  e.uid = st.stx_uid;
  e.gid = st.stx_gid;
  e.nlink = st.stx_nlink;
  e.mtime_s = st.stx_mtime.tv_sec;
  e.mtime_ns = st.stx_mtime.tv_nsec;
  e.ctime_s = st.stx_ctime.tv_sec;
  e.ctime_ns = st.stx_ctime.tv_nsec;
  e.xattr_bytes = S_ISDIR(st.stx_mode) ? llistxattr(path, nullptr, 0) : 0;
  e.path = state.paths_used;
  state.paths_used += static_cast<std::uint32_t>(len + 1);
  return e.xattr_bytes < 0 ? -1 : state.count++;
}

// An entry by its absolute path.
WARREN_CHILD_CODE bool add_path(AsNew& state, const char* path) {
  struct statx st {};
  return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) == 0 &&
         add_entry(state, st, -1, path) >= 0;
}

// What is in the directory `dir` (entry `at`, already added), depth first, on the root's
// filesystem. Closes `dir`.
WARREN_CHILD_CODE bool record_directory(int dir, int at, std::uint64_t dev_major,
                                        std::uint64_t dev_minor, AsNew& state, int depth) {
  bool ok = true;
  alignas(8) char buffer[4096];
  while (ok) {
    const long n = syscall(SYS_getdents64, dir, buffer, sizeof buffer);
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    for (long offset = 0; ok && offset < n;) {
      const auto* d = reinterpret_cast<const dirent64*>(buffer + offset);
      offset += d->d_reclen;
      const char* name = d->d_name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      struct statx st {};
      if (statx(dir, name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0) {
        ok = false;
        break;
      }
      // Another filesystem mounted here: read-only, or the host's own (workspace, --mount).
      if (st.stx_dev_major != dev_major || st.stx_dev_minor != dev_minor) continue;
      const int added = add_entry(state, st, at, name);
      if (added < 0) {
        ok = false;
      } else if (S_ISDIR(st.stx_mode) && depth < kMaxDepth) {
        const int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        ok = sub >= 0 && record_directory(sub, added, dev_major, dev_minor, state, depth + 1);
      } else if (!S_ISLNK(st.stx_mode)) {
        ok = false;  // a file, a fifo, a socket, or too deep: not what a new sandbox has
      }
    }
  }
  close(dir);
  return ok;
}

WARREN_CHILD_CODE bool record_root(AsNew& state) {
  const int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return false;
  struct statx st {};
  struct statfs fs {};
  if (statx(root, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &st) != 0 || fstatfs(root, &fs) != 0 ||
      add_entry(state, st, -1, "/") != 0) {
    close(root);
    return false;
  }
  state.free_inodes = fs.f_ffree;
  state.free_blocks = fs.f_bfree;
  return record_directory(root, 0, st.stx_dev_major, st.stx_dev_minor, state, 0);
}

WARREN_CHILD_CODE bool watch_queues(AsNew& state) {
  const int context = fsopen("mqueue", FSOPEN_CLOEXEC);
  if (context < 0) return false;
  const int mount = fsconfig(context, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) == 0
                        ? fsmount(context, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOEXEC)
                        : -1;
  close(context);
  if (mount < 0) return false;
  state.queues = openat(mount, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  close(mount);  // the open directory keeps the detached mount alive
  return state.queues >= 0;
}

WARREN_CHILD_CODE bool no_ipc_objects(const AsNew& state) {
  shm_info shm{};
  msginfo msg{};
  seminfo sem{};
  if (shmctl(0, SHM_INFO, reinterpret_cast<shmid_ds*>(&shm)) < 0 || shm.used_ids != 0 ||
      msgctl(0, MSG_INFO, reinterpret_cast<msqid_ds*>(&msg)) < 0 || msg.msgpool != 0 ||
      semctl(0, 0, SEM_INFO, &sem) < 0 || sem.semusz != 0)
    return false;
  // Only "." and ".." in the queues' directory.
  alignas(8) char buffer[512];
  if (lseek(state.queues, 0, SEEK_SET) != 0) return false;
  const long n = syscall(SYS_getdents64, state.queues, buffer, sizeof buffer);
  int entries = 0;
  for (long offset = 0; offset < n; ++entries)
    offset += reinterpret_cast<const dirent64*>(buffer + offset)->d_reclen;
  return n > 0 && entries == 2;
}

}  // namespace

WARREN_CHILD_CODE bool record_as_new(AsNew& state) {
  state.count = 0;
  state.paths_used = 0;
  for (int r = 0; r < RLIM_NLIMITS; ++r)
    if (getrlimit(r, &state.limits[r]) != 0) return false;
  return record_root(state) && add_path(state, "/dev/pts") && add_path(state, "/dev/pts/ptmx") &&
         watch_queues(state);
}

WARREN_CHILD_CODE bool still_as_new(const AsNew& state) {
  struct statfs fs {};
  if (statfs("/", &fs) != 0 || fs.f_ffree != state.free_inodes || fs.f_bfree != state.free_blocks)
    return false;
  for (int i = 0; i < state.count; ++i) {
    const AsNew::Entry& e = state.entries[i];
    const char* path = state.paths + e.path;
    struct statx st {};
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) != 0 ||
        !same_entry(e, st) || (S_ISDIR(e.mode) && llistxattr(path, nullptr, 0) != e.xattr_bytes))
      return false;
  }
  for (int r = 0; r < RLIM_NLIMITS; ++r) {
    rlimit now{};
    if (getrlimit(r, &now) != 0 || now.rlim_cur != state.limits[r].rlim_cur ||
        now.rlim_max != state.limits[r].rlim_max)
      return false;
  }
  return no_ipc_objects(state);
}

WARREN_CHILD_CODE void end_every_process() {
  // kill(-1) from a namespace's init reaches every other process of the namespace, zombies
  // included, and fails with ESRCH only once there is none: a process forked while the signals
  // went out is caught by the next round.
  while (kill(-1, SIGKILL) == 0) {
    // Reap what has exited; a process whose parent is still dying is not ours to wait for yet.
    if (waitpid(-1, nullptr, __WALL) < 0 && errno == ECHILD) sched_yield();
  }
  while (waitpid(-1, nullptr, __WALL | WNOHANG) > 0) {
  }
}

WARREN_CHILD_CODE bool receive_command(int socket, NextCommand& next) {
  // Mapped at the first command: the message, then the argv and envp arrays that point into it.
  constexpr std::size_t kPointers = kMaxCommandPointers;
  constexpr std::size_t kSize =
      sizeof(CommandHeader) + kMaxCommandBytes + kPointers * sizeof(char*);
  if (!next.buffer) {
    void* mapped = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) return false;
    next.buffer = static_cast<char*>(mapped);
  }
  char* const buffer = next.buffer;
  iovec iov{buffer, sizeof(CommandHeader) + kMaxCommandBytes};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * NextCommand::kFds)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  int got = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); n > 0 && c; c = CMSG_NXTHDR(&msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      got = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      if (got > NextCommand::kFds) got = NextCommand::kFds;
      std::memcpy(next.fds, CMSG_DATA(c), sizeof(int) * static_cast<std::size_t>(got));
    }
  CommandHeader header;
  if (n < static_cast<ssize_t>(sizeof header) || got != NextCommand::kFds ||
      (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
    return false;
  std::memcpy(&header, buffer, sizeof header);
  char* strings = buffer + sizeof header;
  if (header.magic != kCommandMagic || header.bytes != n - sizeof header || header.bytes == 0 ||
      strings[header.bytes - 1] != '\0' || header.argc == 0 ||
      std::size_t{header.argc} + header.envc + 3 > kPointers)
    return false;
  // Pointers to each string in turn: argv and envp, each null-terminated, then the search path.
  // (No lambda here: sanitizers would instrument it, and PID 1 runs on a stack they do not know.)
  auto** pointers = reinterpret_cast<char**>(buffer + sizeof header + kMaxCommandBytes);
  char* at = strings;
  char* const end = strings + header.bytes;
  std::size_t p = 0;
  for (std::uint32_t i = 0; i < header.argc + header.envc + 1; ++i) {
    if (at >= end) return false;
    if (i == header.argc) pointers[p++] = nullptr;                // argv's end
    if (i == header.argc + header.envc) pointers[p++] = nullptr;  // envp's end
    pointers[p++] = at;
    at += std::strlen(at) + 1;
  }
  next.argv = pointers;
  next.envp = pointers + header.argc + 1;
  next.search_path = pointers[header.argc + header.envc + 2];
  return true;
}

std::string encode_command(const std::vector<char*>& argv, const std::vector<char*>& envp,
                           const char* search_path) {
  CommandHeader header;
  std::string strings;
  for (const char* arg : argv)
    if (arg) strings.append(arg).push_back('\0'), ++header.argc;
  for (const char* kv : envp)
    if (kv) strings.append(kv).push_back('\0'), ++header.envc;
  strings.append(search_path ? search_path : "").push_back('\0');
  // PID 1 has room for this many strings' pointers (with argv's and envp's ends).
  const std::size_t pointers = std::size_t{header.argc} + header.envc + 3;
  if (header.argc == 0 || strings.size() > kMaxCommandBytes || pointers > kMaxCommandPointers)
    return {};
  header.bytes = static_cast<std::uint32_t>(strings.size());
  std::string message(reinterpret_cast<const char*>(&header), sizeof header);
  return message + strings;
}

bool send_command(int socket, const std::string& message, const int (&fds)[NextCommand::kFds]) {
  iovec iov{const_cast<char*>(message.data()), message.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof fds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  std::memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n;
  do n = sendmsg(socket, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(message.size());
}

std::string recycle_key(const Policy& policy, const Command& command) {
  // Not recycled: image roots and snapshots (their roots are not the template's), terminals,
  // commands with capabilities (what they may change is more than the checks cover) and an
  // outbound or private network (a NAT process, a member, that live and end with the sandbox).
  if (!policy.rootfs.empty() || !policy.root.empty() || !policy.snapshot.empty() ||
      command.terminal >= 0 || policy.privileges != Privileges::None ||
      policy.network == Network::Outbound || policy.network == Network::Private)
    return {};
  std::string key;
  auto field = [&](const std::string& value) { key.append(value).push_back('\0'); };
  const Limits& l = policy.limits;
  for (std::uint64_t n : {l.memory_bytes, static_cast<std::uint64_t>(l.pids), l.disk_bytes,
                          l.file_size_bytes, l.open_files})
    field(std::to_string(n));
  field(std::to_string(l.cpus));
  field(policy.network == Network::None ? "none" : "host");
  field(policy.workspace);
  field(policy.workspace_path);
  for (const Mount& m : policy.mounts) {
    field(m.source);
    field(m.target);
    field(m.read_only ? "ro" : "rw");
  }
  field(policy.seccomp_policy);
  field(policy.hostname);
  field(std::to_string(policy.host_ids));
  return key;
}

HostPathCheck::HostPathCheck(const std::string& path)
    : path_(path), fd_(open(path.c_str(), O_PATH | O_CLOEXEC)) {}

HostPathCheck::~HostPathCheck() {
  if (fd_ >= 0) close(fd_);
}

bool HostPathCheck::unchanged() const {
  struct stat then {
  }, now{};
  return fd_ >= 0 && fstat(fd_, &then) == 0 && then.st_nlink > 0 &&
         stat(path_.c_str(), &now) == 0 && now.st_dev == then.st_dev && now.st_ino == then.st_ino;
}

WarmSandboxes::WarmSandboxes(std::size_t keep, std::chrono::seconds idle_for)
    : keep_(keep), idle_for_(idle_for) {
  if (keep_ > 0) expiry_ = std::thread([this] { expire_when_due(); });
}

WarmSandboxes::~WarmSandboxes() {
  close();
}

std::unique_ptr<Launched> WarmSandboxes::take(const std::string& key) {
  std::vector<std::unique_ptr<Launched>> ended;  // ended outside the lock: each kill waits
  std::unique_ptr<Launched> found;
  {
    std::lock_guard guard(lock_);
    expire(ended);
    for (auto it = waiting_.rbegin(); it != waiting_.rend(); ++it) {  // the newest first
      if ((*it)->recycle_key != key) continue;
      found = std::move(*it);
      waiting_.erase(std::next(it).base());
      break;
    }
  }
  if (!found) return nullptr;
  pollfd exited{found->pidfd, POLLIN, 0};
  bool usable = poll(&exited, 1, 0) == 0;
  for (const auto& path : found->host_paths) usable = usable && path->unchanged();
  if (!usable) return nullptr;  // `found` ends here
  return found;
}

void WarmSandboxes::put(std::unique_ptr<Launched> sandbox) {
  std::vector<std::unique_ptr<Launched>> ended;
  std::lock_guard guard(lock_);
  if (closed_ || keep_ == 0) {
    ended.push_back(std::move(sandbox));
  } else {
    sandbox->idle_since = Clock::now();
    waiting_.push_back(std::move(sandbox));
    changed_.notify_one();
  }
  expire(ended);
}

void WarmSandboxes::close() {
  std::deque<std::unique_ptr<Launched>> ended;
  {
    std::lock_guard guard(lock_);
    closed_ = true;
    ended.swap(waiting_);
    changed_.notify_one();
  }
  if (expiry_.joinable() && expiry_.get_id() != std::this_thread::get_id()) expiry_.join();
}

void WarmSandboxes::expire_when_due() {
  std::unique_lock lock(lock_);
  while (!closed_) {
    if (waiting_.empty())
      changed_.wait(lock);
    else
      changed_.wait_until(lock, waiting_.front()->idle_since + idle_for_);
    std::vector<std::unique_ptr<Launched>> ended;
    expire(ended);
    lock.unlock();
    ended.clear();  // each waits for its PID 1 to go: not under the lock
    lock.lock();
  }
}

void WarmSandboxes::expire(std::vector<std::unique_ptr<Launched>>& ended) {
  const auto now = Clock::now();
  while (!waiting_.empty() &&
         (waiting_.size() > keep_ || now - waiting_.front()->idle_since >= idle_for_)) {
    ended.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
}

}  // namespace warren::sandbox::detail
