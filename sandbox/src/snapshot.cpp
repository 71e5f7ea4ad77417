// Snapshots: a copy of a session's writable state (its root layer and its workspace) in a host
// directory, from which any number of sandboxes start as copy-on-write overlays (mount.cpp).
//
// The copy walks the sandbox's root as PID 1 sees it, by descriptor (tree_copy.hpp), so that
// nothing the sandbox planted can lead the walk out. A directory on another device than its
// parent is a mount point (the system binds, /proc, /dev, the workspace) and is left out of the
// root layer.
#include <fcntl.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <vector>

#include "bounded_fs.hpp"
#include "fd.hpp"
#include "session_state.hpp"
#include "tree_copy.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using detail::copy_file;
using detail::copy_tree;
using detail::Fd;
using detail::TreeCopyOptions;

using detail::TreeCopyBudget;

// Every process of the sandbox but PID 1 stopped (SIGSTOP, which no process can block or
// ignore), and continued again when this ends: the copy sees a sandbox that nothing changes
// meanwhile. Without it a background job could swap files as they are copied. The processes are
// PID 1's descendants (an orphan is reparented to PID 1, the pid namespace's init), found from its
// children lists round by round until a round stops nothing new and each is seen stopped.
class StoppedProcesses {
 public:
  explicit StoppedProcesses(pid_t pid1) {
    for (int round = 0; round < 100; ++round) {
      bool all_stopped = true;
      for (pid_t pid : descendants(pid1)) {
        if (stopped_.insert(pid).second) ::kill(pid, SIGSTOP);
        if (!is_stopped(pid)) all_stopped = false;
      }
      if (all_stopped) break;
      usleep(1000);  // a process on another CPU stops when it next enters the kernel
    }
  }
  ~StoppedProcesses() {
    for (pid_t pid : stopped_) ::kill(pid, SIGCONT);
  }
  StoppedProcesses(const StoppedProcesses&) = delete;
  StoppedProcesses& operator=(const StoppedProcesses&) = delete;

 private:
  static std::vector<pid_t> descendants(pid_t pid1) {
    std::vector<pid_t> found, parents{pid1};
    while (!parents.empty()) {
      const pid_t parent = parents.back();
      parents.pop_back();
      // Each thread has its own list; the main thread's holds what the process forked.
      std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                             "/children");
      for (pid_t child; children >> child;) {
        found.push_back(child);
        parents.push_back(child);
      }
    }
    return found;
  }
  // Stopped, traced, a zombie, or gone: nothing it does can change a file any more.
  static bool is_stopped(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    const std::size_t paren = text.rfind(')');
    if (paren == std::string::npos || paren + 2 >= text.size()) return true;
    const char state = text[paren + 2];
    return state == 'T' || state == 't' || state == 'Z' || state == 'X';
  }
  std::set<pid_t> stopped_;
};

// Copies the tree at `path` inside the sandbox (absolute) into the new directory `to`.
Result<void> copy_from_sandbox(int root_fd, const char* path, const std::string& to,
                               const Limits& limits, TreeCopyBudget& budget) {
  // No component may be a link: the sandbox could have made one lead anywhere on the host.
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  Fd from(static_cast<int>(syscall(SYS_openat2, root_fd, path, &how, sizeof how)));
  if (from.fd < 0)
    return tl::unexpected(
        Error{std::string("snapshot: opening ") + path + ": " + std::strerror(errno)});
  struct stat st {};
  if (fstat(from.fd, &st) != 0)
    return tl::unexpected(
        Error{std::string("snapshot: stat ") + path + ": " + std::strerror(errno)});
  if (mkdir(to.c_str(), 0700) != 0)
    return tl::unexpected(Error{"snapshot: creating " + to + ": " + std::strerror(errno)});
  Fd target(open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (target.fd < 0)
    return tl::unexpected(Error{"snapshot: opening " + to + ": " + std::strerror(errno)});
  // The sandbox's ids are kept as the host sees them (100000 and up); its mounts are left out.
  const TreeCopyOptions options{.purpose = "snapshot",
                                .same_device_only = true,
                                .max_bytes = limits.snapshot_bytes,
                                .max_entries = limits.snapshot_files};
  if (auto copied = copy_tree(from.fd, target.fd, options, budget); !copied) return copied;
  // The top takes the owner and mode of what it copies, as the sandbox sees it.
  if (fchown(target.fd, st.st_uid, st.st_gid) != 0 || fchmod(target.fd, st.st_mode & 01777) != 0)
    return tl::unexpected(Error{"snapshot: owner of " + to + ": " + std::strerror(errno)});
  return {};
}

}  // namespace

Result<void> Session::snapshot(const std::string& dir) {
  State& s = *state_;
  if (s.dead) return tl::unexpected(Error{"the session has ended"});
  if (mkdir(dir.c_str(), 0711) != 0)  // searchable by the sandbox's ids, which read it as a layer
    return tl::unexpected(Error{"snapshot: creating " + dir + ": " + std::strerror(errno)});
  const StoppedProcesses quiet(s.sandbox->pid);
  TreeCopyBudget budget;  // the root and the workspace together
  const Limits& limits = s.policy.limits;
  auto copied = copy_from_sandbox(s.root_fd, ".", dir + "/root", limits, budget);
  const std::string& workspace = s.policy.workspace_path;
  if (copied && s.workdir != workspace) return {};  // no workspace in this sandbox
  if (copied)
    copied =
        copy_from_sandbox(s.root_fd, workspace.c_str() + 1, dir + "/workspace", limits, budget);
  if (!copied) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // nothing half-made is left behind
  }
  return copied;
}

namespace {

tl::unexpected<Error> workspace_error(const std::string& message) {
  return tl::unexpected(Error{"workspace: " + message});
}

// `relative` names something beneath its folder on its face: not absolute, no "..".
bool plainly_beneath(const std::string& relative) {
  if (relative.starts_with('/')) return false;
  for (const auto& part : std::filesystem::path(relative))
    if (part == "..") return false;
  return true;
}

// The directory `relative` (made with its parents, owned by `owner` when not -1) under `top`.
Result<Fd> make_directories(int top, const std::string& relative, int owner) {
  Fd at(dup(top));
  for (const auto& part : std::filesystem::path(relative)) {
    const std::string name = part.string();
    if (name.empty() || name == ".") continue;
    if (mkdirat(at.fd, name.c_str(), 0755) == 0 && owner >= 0)
      fchownat(at.fd, name.c_str(), owner, owner, AT_SYMLINK_NOFOLLOW);
    Fd next(openat(at.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.fd < 0) return workspace_error("making " + relative + ": " + std::strerror(errno));
    at = std::move(next);
  }
  return at;
}

// A copy of the link `name` in `dir`, read through `link` (an O_PATH descriptor of it), with its
// owner moved to `owner` when not -1.
Result<void> copy_link(int link, int dir, const std::string& name, const struct stat& st,
                       int owner) {
  std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
  const ssize_t n = readlinkat(link, "", target.data(), target.size());
  if (n < 0) return workspace_error("reading the link " + name + ": " + std::strerror(errno));
  target.resize(static_cast<std::size_t>(n));
  if (symlinkat(target.c_str(), dir, name.c_str()) != 0)
    return workspace_error("making the link " + name + ": " + std::strerror(errno));
  if (owner >= 0) fchownat(dir, name.c_str(), owner, owner, AT_SYMLINK_NOFOLLOW);
  return {};
}

// One entry of `files`: resolved beneath `root` and copied to its place under `to`.
Result<void> copy_entry(int root, const std::string& root_name, const WorkspaceFile& file, int to,
                        const TreeCopyOptions& options, TreeCopyBudget& budget) {
  if (!plainly_beneath(file.from))
    return workspace_error(file.from + " is outside " + root_name +
                           " (absolute paths and .. are refused)");
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC | (file.follow_link ? 0 : O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  Fd source(static_cast<int>(syscall(SYS_openat2, root, file.from.c_str(), &how, sizeof how)));
  if (source.fd < 0 && errno == EXDEV)
    return workspace_error(file.from + " leads out of " + root_name + " through a link");
  if (source.fd < 0) return workspace_error(file.from + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(source.fd, &st) != 0) return workspace_error(file.from + ": " + std::strerror(errno));
  const int owner = options.id_shift ? static_cast<int>(options.id_shift) : -1;
  if (S_ISDIR(st.st_mode)) {  // its contents, into `to`
    Fd listing(openat(source.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    auto into = make_directories(to, file.to, owner);
    if (!into) return tl::unexpected(into.error());
    if (listing.fd < 0) return workspace_error(file.from + ": " + std::strerror(errno));
    return copy_tree(listing.fd, into->fd, options, budget);
  }
  if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
    return workspace_error(file.from + " in " + root_name + " is not a file or a directory");
  const std::filesystem::path target(file.to);
  if (target.filename().empty() || target.filename() == "." || target.filename() == "..")
    return workspace_error("no file name to copy " + file.from + " to");
  auto parent = make_directories(to, target.parent_path().string(), owner);
  if (!parent) return tl::unexpected(parent.error());
  const std::string name = target.filename().string();
  unlinkat(parent->fd, name.c_str(), 0);  // a later copy replaces an earlier one, as in Docker
  ++budget.entries;
  if (S_ISLNK(st.st_mode)) return copy_link(source.fd, parent->fd, name, st, owner);
  return copy_file(source.fd, parent->fd, name, options, budget);
}

// The bounded workspace at `dest` holds what was copied and `limits` more.
Result<void> fit_to_copy(const std::string& dest, WorkspaceLimits limits, unsigned owner) {
  struct statfs fs {};
  if (statfs(dest.c_str(), &fs) != 0)
    return workspace_error("statfs " + dest + ": " + std::strerror(errno));
  const std::uint64_t used = (fs.f_blocks - fs.f_bfree) * static_cast<std::uint64_t>(fs.f_bsize);
  const std::uint64_t used_files = fs.f_files - fs.f_ffree;
  const std::string options = detail::bounded_options(
      used + limits.bytes, used_files + detail::inodes_for(limits), owner, 0755);
  if (mount("warren-workspace", dest.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
            options.c_str()) != 0)
    return workspace_error("limiting the filesystem at " + dest + ": " + std::strerror(errno));
  return {};
}

}  // namespace

namespace detail {

std::string bounded_options(std::uint64_t bytes, std::uint64_t files, unsigned owner,
                            unsigned mode) {
  char octal[8];
  std::snprintf(octal, sizeof octal, "%04o", mode);
  const unsigned uid = owner ? owner : geteuid(), gid = owner ? owner : getegid();
  return "size=" + std::to_string(bytes) + ",nr_inodes=" + std::to_string(files) +
         ",mode=" + octal + ",uid=" + std::to_string(uid) + ",gid=" + std::to_string(gid);
}

std::uint64_t inodes_for(WorkspaceLimits limits) {
  return limits.files ? limits.files : std::max<std::uint64_t>(limits.bytes >> 10, 1024);
}

Result<void> mount_bounded(const std::string& dest, WorkspaceLimits limits, unsigned owner,
                           unsigned mode) {
  std::uint64_t bytes = limits.bytes, files = inodes_for(limits);
  if (limits.beyond_copy) {  // as large as memory allows until the copy is in (fit_to_copy)
    bytes = static_cast<std::uint64_t>(sysconf(_SC_PHYS_PAGES)) *
            static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
    files = std::uint64_t{1} << 31;
  }
  const std::string options = bounded_options(bytes, files, owner, mode);
  if (mount("warren-workspace", dest.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
    return tl::unexpected(
        Error{"workspace: mounting a bounded filesystem at " + dest + ": " + std::strerror(errno)});
  return {};
}

}  // namespace detail

Result<void> remove_workspace(const std::string& path) {
  std::error_code ec;
  const std::string top = std::filesystem::absolute(path, ec).lexically_normal().string();
  // Mount points at or below `top`, from mountinfo's fifth field (spaces and the like octal).
  std::vector<std::string> mounts;
  std::ifstream info("/proc/self/mountinfo");
  for (std::string line; std::getline(info, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    fields >> id >> parent >> device >> root >> point;
    std::string decoded;
    for (std::size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    const std::string layers = workspace_layers(top);  // an overlay workspace's
    if (decoded == top || decoded.starts_with(top + "/") || decoded == layers ||
        decoded.starts_with(layers + "/"))
      mounts.push_back(decoded);
  }
  std::sort(mounts.begin(), mounts.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  for (const std::string& point : mounts)
    if (umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL)
      return workspace_error("unmounting " + point + ": " + std::strerror(errno));
  std::filesystem::remove_all(top, ec);
  if (ec) return workspace_error("removing " + top + ": " + ec.message());
  std::filesystem::remove_all(workspace_layers(top), ec);
  if (ec) return workspace_error("removing " + workspace_layers(top) + ": " + ec.message());
  return {};
}

Result<WorkspaceCopy> make_workspace(const std::string& root,
                                     const std::vector<WorkspaceFile>& files,
                                     const std::string& dest, unsigned host_ids,
                                     WorkspaceLimits limits) {
  Fd from(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (from.fd < 0) return workspace_error("opening " + root + ": " + std::strerror(errno));
  if (host_ids && !detail::range_starting_at(host_ids))
    return workspace_error("host ids " + std::to_string(host_ids) + " begin no id range");
  // As root the sandbox's ids are a range of host ids (user.hpp): shift the owners there.
  // Rootless the sandbox's root is the caller, who owns the copy already, and the filesystem is
  // mounted in Warren's own namespaces where it can be (can_mount_workspaces).
  const unsigned shift = geteuid() == 0 ? (host_ids ? host_ids : detail::kHostIdBase) : 0;
  if (mkdir(dest.c_str(), 0755) != 0)
    return workspace_error("creating " + dest + ": " + std::strerror(errno));
  const bool bounded = limits.bytes && (shift || can_mount_workspaces());
  if (bounded)
    if (auto mounted = detail::mount_bounded(dest, limits, shift, 0755); !mounted) {
      rmdir(dest.c_str());
      return tl::unexpected(mounted.error());
    }
  Fd to(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (to.fd < 0) return workspace_error("opening " + dest + ": " + std::strerror(errno));
  const TreeCopyOptions options{.purpose = "workspace", .id_shift = shift};
  TreeCopyBudget budget;
  Result<void> copied;
  for (const WorkspaceFile& file : files) {
    copied = copy_entry(from.fd, root, file, to.fd, options, budget);
    if (!copied) break;
  }
  if (copied && shift && fchown(to.fd, shift, shift) != 0)
    copied = workspace_error("owner of " + dest + ": " + std::strerror(errno));
  if (copied && bounded && limits.beyond_copy) copied = fit_to_copy(dest, limits, shift);
  if (!copied) {
    to = Fd(-1);
    (void)remove_workspace(dest);  // nothing half-made is left behind
    if (copied.error().message.find(std::strerror(ENOSPC)) != std::string::npos)
      copied =
          workspace_error("the files are more than the workspace's limit of " +
                          std::to_string(limits.bytes) + " bytes (" + copied.error().message + ")");
    return tl::unexpected(copied.error());
  }
  return WorkspaceCopy{budget.entries, budget.bytes};
}

Result<WorkspaceCopy> copy_workspace(const std::string& source, const std::string& dest,
                                     unsigned host_ids) {
  return make_workspace(source, {{".", ""}}, dest, host_ids);
}

}  // namespace warren::sandbox
