#include "mount.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "control_file.hpp"
#include "net.hpp"

namespace warren::sandbox::detail {

namespace {

namespace fs = std::filesystem;

constexpr unsigned long kBind = MS_BIND | MS_REC;
constexpr unsigned long kSafe = MS_NOSUID | MS_NODEV;
constexpr unsigned long kKeepMode = 1;  // Mkdir's flags: an existing directory is left as it is

// Host directories that make up a usable system, bound read-only.
constexpr const char* kSystemDirs[] = {"/usr",   "/bin",    "/sbin", "/lib", "/lib32",
                                       "/lib64", "/libx32", "/etc",  "/opt"};

// Host secrets hidden behind /dev/null even though /etc is visible.
constexpr const char* kMaskedFiles[] = {"/etc/shadow", "/etc/gshadow", "/etc/shadow-",
                                        "/etc/gshadow-", "/etc/sudoers"};

// Kernel interfaces: masked (no data) or read-only, as Docker and bubblewrap do. Each costs a mount
// in every start, so none is here that the kernel already closes to a sandbox: /proc/kmsg needs
// CAP_SYSLOG in the host's user namespace and is its root's alone (0400), and /proc/sysvipc's
// files are read-only (0444) for everyone.
// The boot's command line, the kernel's build configuration and the boot's id say which host this
// is (and the first may carry secrets passed at boot): a sandbox learns none of them.
constexpr const char* kMaskedProc[] = {"/proc/kcore",         "/proc/sysrq-trigger",
                                       "/proc/timer_list",    "/proc/keys",
                                       "/proc/latency_stats", "/proc/sched_debug",
                                       "/proc/kallsyms",      "/proc/cmdline",
                                       "/proc/config.gz",     "/proc/sys/kernel/random/boot_id"};
constexpr const char* kReadOnlyProc[] = {"/proc/sys", "/proc/bus", "/proc/fs", "/proc/irq"};

constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

// Overlay options are comma-separated and lowerdir is colon-separated: such paths cannot be named.
bool overlay_safe(const std::string& path) {
  return path.find_first_of(",:\\") == std::string::npos;
}

// Mkdir steps for `path` (absolute, inside the new root) and each of its missing parents, the new
// root being at `new_root` (or "." once PID 1 works inside it). One that exists keeps its mode:
// /tmp stays 1777 under a workspace at /tmp/ws.
void plan_directories(const std::string& new_root, const std::string& path,
                      std::vector<FsStep>& pre, Strings& strings) {
  for (std::size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    pre.push_back({FsStep::Mkdir, strings.keep(new_root + path.substr(0, slash)), nullptr, nullptr,
                   kKeepMode});
    if (slash == std::string::npos) break;
  }
}

// `source`, a host path, bound at `target` inside the new root with all its submounts, nosuid and
// nodev: by name, or as a tree the supervisor opens when PID 1 cannot see the host's mounts
// (FsStep::Attach).
void plan_host_bind(bool attach, const char* target, const std::string& source,
                    std::vector<FsStep>& pre, Strings& strings) {
  const char* absolute = strings.keep(fs::absolute(source));
  if (attach)
    pre.push_back({FsStep::Attach, target, absolute});
  else
    pre.push_back({FsStep::Mount, target, absolute, nullptr, kBind});
  pre.push_back({FsStep::Restrict, target});
}

// A workspace path the sandbox can mount on: absolute, normal, and not in the read-only system
// view or the kernel's filesystems.
Result<void> check_workspace_path(const std::string& path) {
  const fs::path p(path);
  if (!p.is_absolute() || p == "/" || p.lexically_normal() != p || path.ends_with('/'))
    return tl::unexpected(
        Error{"the workspace path must be a normal absolute path below /, not '" + path + "'"});
  const std::string top = "/" + (++p.begin())->string();
  for (const char* system : {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                             "/proc", "/dev", "/sys", "/run"})
    if (top == system)
      return tl::unexpected(Error{"the workspace path " + path + " is inside " + system +
                                  ", which the sandbox shows read-only or from the kernel"});
  return {};
}

// The root as copy-on-write overlays over a snapshot, an image, or a snapshot over an image: the
// upper directories live in a tmpfs of the sandbox's own (size-limited like any writable layer)
// mounted beside the new root, and the lower layers are only ever read. Attached, the snapshot
// and the image are mounted in that tmpfs first, and the overlays take their layers from there;
// the image idmapped (FsStep::shift_ids), so that its root-owned files are the sandbox root's.
Result<void> plan_layered_root(const Policy& policy, const std::string& new_root, bool attach,
                               bool in_spawner, const std::string& size, ChildPlan& plan,
                               Strings& strings) {
  const bool has_snapshot = !policy.snapshot.empty(), has_image = !policy.rootfs.empty();
  const std::string snapshot = has_snapshot ? fs::absolute(policy.snapshot).string() : "";
  if (has_snapshot && !fs::is_directory(snapshot + "/root"))
    return tl::unexpected(
        Error{"--snapshot " + policy.snapshot + " is not a snapshot (it has no root/ directory)"});
  if (!overlay_safe(snapshot) || !overlay_safe(policy.rootfs))
    return tl::unexpected(Error{"--snapshot and --rootfs paths cannot contain ',', ':' or '\\'"});
  // Beside the staging directory: on the host, or in the spawner's root, which has it.
  const std::string layer = new_root + "-layer";
  std::error_code ec;
  if (!in_spawner) fs::create_directories(layer, ec);
  if (ec) return tl::unexpected(Error{"cannot create " + layer + ": " + ec.message()});
  auto& pre = plan.before_pivot;
  pre.push_back({FsStep::Mount, strings.keep(layer), "tmpfs", "tmpfs", kSafe, strings.keep(size)});
  for (const char* dir : {"/root-upper", "/root-work", "/ws-upper", "/ws-work"})
    pre.push_back({FsStep::Mkdir, strings.keep(layer + dir)});
  std::string snapshot_seen = snapshot,
              image_seen = has_image ? fs::absolute(policy.rootfs).string() : "";
  if (attach && has_snapshot) {
    snapshot_seen = layer + "/snapshot";
    pre.push_back({FsStep::Mkdir, strings.keep(snapshot_seen)});
    plan_host_bind(true, strings.keep(snapshot_seen), snapshot, pre, strings);
  }
  if (attach && has_image) {
    image_seen = layer + "/image";
    pre.push_back({FsStep::Mkdir, strings.keep(image_seen)});
    FsStep image{FsStep::Attach, strings.keep(image_seen),
                 strings.keep(fs::absolute(policy.rootfs))};
    image.shift_ids = true;
    pre.push_back(image);
  }
  std::string lower = has_snapshot ? snapshot_seen + "/root" : "";
  if (has_image) lower += (lower.empty() ? "" : ":") + image_seen;
  pre.push_back({FsStep::Mount, strings.keep(new_root), "overlay", "overlay", kSafe,
                 strings.keep("lowerdir=" + lower + ",upperdir=" + layer +
                              "/root-upper,workdir=" + layer + "/root-work")});
  if (has_snapshot && policy.workspace.empty() && fs::is_directory(snapshot + "/workspace")) {
    plan_directories(new_root, policy.workspace_path, pre, strings);
    pre.push_back({FsStep::Mount, strings.keep(new_root + policy.workspace_path), "overlay",
                   "overlay", kSafe,
                   strings.keep("lowerdir=" + snapshot_seen + "/workspace,upperdir=" + layer +
                                "/ws-upper,workdir=" + layer + "/ws-work")});
    plan.workdir = strings.keep(policy.workspace_path);
  } else if (has_image && policy.workspace.empty()) {
    // An image's working directory is its own (a Dockerfile's WORKDIR), made when it has none.
    plan_directories(new_root, policy.workspace_path, pre, strings);
    plan.workdir = strings.keep(policy.workspace_path);
  }
  return {};
}

// The host system, read-only: from the templates (one recursive bind each, masks and read-only
// flag included), or from the host (a bind, a read-only remount, and the masks one by one).
template <class InRoot>
void plan_system_view(const HostView& host, const std::string& templates, InRoot in_root,
                      std::vector<FsStep>& pre, Strings& strings) {
  for (const HostView::SystemEntry& entry : host.system) {
    const char* dir = entry.path.c_str();
    if (!entry.link.empty()) {  // merged /usr: /bin -> usr/bin
      pre.push_back({FsStep::Symlink, in_root(dir), strings.keep(entry.link)});
    } else if (!templates.empty()) {
      // Optional: a directory that appeared on the host after the templates were made is left out.
      pre.push_back({FsStep::Mkdir, in_root(dir)});
      pre.push_back({FsStep::Mount, in_root(dir), strings.keep(templates + dir), nullptr,
                     MS_BIND | MS_REC, nullptr, 0, true});
    } else {
      pre.push_back({FsStep::Mkdir, in_root(dir)});
      pre.push_back({FsStep::Mount, in_root(dir), strings.keep(entry.path), nullptr, MS_BIND});
      pre.push_back({FsStep::RemountReadOnly, in_root(dir)});
    }
  }
  if (!templates.empty()) return;
  for (const std::string& file : host.masked)
    pre.push_back({FsStep::Mount, in_root(file), "/dev/null", nullptr, MS_BIND});
}

// /dev at `dev` (an existing directory): a small read-only tmpfs with the host's harmless device
// nodes, the mount point for a devpts, and the usual links. /dev/shm points into /run, which is
// writable. The spawner, root on the host, makes the nodes themselves (one mount in all); a
// sandbox building its own /dev binds each from the host (no user namespace may make one).
void plan_dev(const std::string& dev, bool make_nodes, std::vector<FsStep>& pre, Strings& strings) {
  auto at = [&](const char* name) { return strings.keep(dev + name); };
  pre.push_back({FsStep::Mount, strings.keep(dev), "tmpfs", "tmpfs", MS_NOSUID | MS_NOEXEC,
                 "mode=0755,size=64k"});
  for (const char* name : kDevices) {
    const std::string host = std::string("/dev/") + name;
    struct stat st {};
    if (make_nodes && stat(host.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) {
      pre.push_back({FsStep::DeviceNode, at(host.c_str() + 4), nullptr, nullptr,
                     static_cast<unsigned long>(st.st_rdev), nullptr, 0666});
    } else {
      pre.push_back({FsStep::Touch, at(host.c_str() + 4)});
      pre.push_back({FsStep::Mount, at(host.c_str() + 4), strings.keep(host), nullptr, MS_BIND});
    }
  }
  pre.push_back({FsStep::Mkdir, at("/pts")});
  pre.push_back({FsStep::Symlink, at("/ptmx"), "pts/ptmx"});
  pre.push_back({FsStep::Symlink, at("/fd"), "/proc/self/fd"});
  pre.push_back({FsStep::Symlink, at("/stdin"), "/proc/self/fd/0"});
  pre.push_back({FsStep::Symlink, at("/stdout"), "/proc/self/fd/1"});
  pre.push_back({FsStep::Symlink, at("/stderr"), "/proc/self/fd/2"});
  pre.push_back({FsStep::Symlink, at("/shm"), "/run/shm"});
  // Nothing new appears in /dev. Not nodev: the spawner's nodes live in this tmpfs itself.
  pre.push_back(
      {FsStep::RemountReadOnly, strings.keep(dev), nullptr, nullptr, MS_NOSUID | MS_NOEXEC});
}

}  // namespace

Result<HostView> look_at_host() {
  HostView host;
  for (const char* dir : kSystemDirs) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(dir, ec);
    if (ec || !fs::exists(st)) continue;
    if (fs::is_symlink(st))
      host.system.push_back({dir, fs::read_symlink(dir, ec)});
    else if (fs::is_directory(st))
      host.system.push_back({dir, {}});
  }
  for (const char* file : kMaskedFiles)
    if (fs::exists(file)) host.masked.push_back(file);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/etc/ssh", ec)) {
    const std::string name = entry.path().filename();
    if (name.starts_with("ssh_host_") && name.ends_with("_key"))
      host.masked.push_back(entry.path());
  }
  // This kernel's /proc is the sandboxes': a file it does not have needs no mask.
  for (const char* file : kMaskedProc)
    if (fs::exists(file)) host.proc_masked.push_back(file);
  // Every capability this kernel knows, and no more prctl calls than that.
  const std::string last = read_control("/proc/sys/kernel/cap_last_cap");
  if (const int n = std::atoi(last.c_str()); !last.empty() && n > 0 && n <= 63)
    host.last_capability = n;
  host.staging = geteuid() == 0 ? "/run/warren/sandbox-root"
                                : "/tmp/warren-" + std::to_string(geteuid()) + "/root";
  fs::create_directories(host.staging, ec);
  if (ec) return tl::unexpected(Error{"cannot create " + host.staging + ": " + ec.message()});
  return host;
}

std::vector<FsStep> plan_templates(const HostView& host, const std::string& dir, Strings& strings) {
  std::vector<FsStep> steps;
  steps.push_back(
      {FsStep::Mount, strings.keep(dir), "tmpfs", "tmpfs", kSafe, "mode=0755,size=64k"});
  plan_system_view(
      host, {}, [&](const std::string& path) { return strings.keep(dir + path); }, steps, strings);
  steps.push_back({FsStep::Mkdir, strings.keep(dir + "/dev")});
  plan_dev(dir + "/dev", true, steps, strings);
  return steps;
}

Result<void> plan_filesystem(const Policy& policy, const HostView& host,
                             const std::string& templates, ChildPlan& plan, Strings& strings) {
  const std::string& new_root = host.staging;
  if (auto checked = check_workspace_path(policy.workspace_path); !checked) return checked;
  if (!policy.rootfs.empty() && !fs::is_directory(policy.rootfs))
    return tl::unexpected(Error{"--rootfs " + policy.rootfs + " is not a directory"});
  if (policy.mounts.size() > kMaxAttached - 3)  // the workspace, the image and the snapshot
    return tl::unexpected(
        Error{"at most " + std::to_string(kMaxAttached - 3) + " --mount options can be given"});
  // With templates, PID 1 starts from the spawner's namespace, which has no host mounts to name.
  // As root, host paths are attached by descriptor in any case: PID 1 runs as the sandbox's ids,
  // which cannot walk down to a workspace below a private folder (a 0700 home), and need not.
  const bool in_spawner = !templates.empty();
  const bool attach = in_spawner || geteuid() == 0;
  auto& pre = plan.before_pivot;
  auto& post = plan.after_pivot;

  // The writable layer: everything not bound below lives in this size-limited tmpfs, or in an
  // overlay over a snapshot whose upper layer is such a tmpfs.
  const std::string size = "size=" + std::to_string(policy.limits.disk_bytes) + ",mode=0755";
  if (!policy.root.empty()) {
    if (!fs::is_directory(policy.root))
      return tl::unexpected(Error{"the root " + policy.root + " is not a directory"});
    plan_host_bind(attach, strings.keep(new_root), policy.root, pre, strings);
  } else if (!policy.snapshot.empty() || !policy.rootfs.empty()) {
    if (auto planned = plan_layered_root(policy, new_root, attach, in_spawner, size, plan, strings);
        !planned)
      return planned;
  } else {
    pre.push_back(
        {FsStep::Mount, strings.keep(new_root), "tmpfs", "tmpfs", kSafe, strings.keep(size)});
  }

  // With the root mounted, PID 1 works from inside it: every later path is relative, which spares
  // each of the few dozen steps of a start the walk from / down to the staging directory.
  pre.push_back({FsStep::EnterDirectory, strings.keep(new_root)});
  auto in_root = [&](const std::string& path) {
    return strings.keep(path == "/" ? "." : path.substr(1));
  };
  const std::string relative_templates =
      templates.empty() ? "" : fs::path(templates).lexically_relative(new_root).string();

  if (policy.rootfs.empty() && policy.root.empty()) {
    plan_system_view(host, relative_templates, in_root, pre, strings);
  } else {
    // What a container runtime gives an image's root: the sandbox's own names resolve (builders
    // leave /etc/hosts empty; Docker mounts one of its own).
    pre.push_back({FsStep::Mkdir, in_root("/etc"), nullptr, nullptr, 0, nullptr, 0755, true});
    std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    if (policy.network != Network::Private) hosts += "127.0.1.1\t" + policy.hostname + "\n";
    for (const std::string& line : policy.hosts) hosts += line + "\n";  // its own among them
    pre.push_back({FsStep::WriteFile, in_root("/etc/hosts"), nullptr, nullptr, 0,
                   strings.keep(std::move(hosts))});
    pre.push_back({FsStep::WriteFile, in_root("/etc/hostname"), nullptr, nullptr, 0,
                   strings.keep(policy.hostname + "\n")});
    if (policy.network == Network::Outbound)
      pre.push_back({FsStep::WriteFile, in_root("/etc/resolv.conf"), nullptr, nullptr, 0,
                     kOutboundResolvConf});
  }

  // Writable places of the host-system view (already tmpfs: just directories).
  for (const char* dir : {"/tmp", "/root", "/home", "/run", "/var", "/var/tmp", "/proc", "/dev"})
    pre.push_back({FsStep::Mkdir, in_root(dir), nullptr, nullptr, 0, nullptr,
                   std::string_view(dir).ends_with("tmp") ? 01777u : 0755u, true});

  // /proc of the new pid namespace, mounted while the host's /proc is still visible (the kernel
  // refuses a proc mount in a namespace that has no fully visible one).
  pre.push_back({FsStep::Mount, in_root("/proc"), "proc", "proc", kSafe | MS_NOEXEC});

  // A minimal /dev: a few host device nodes and a private devpts.
  if (templates.empty()) {
    plan_dev(in_root("/dev"), false, pre, strings);
  } else {
    pre.push_back({FsStep::Mount, in_root("/dev"), strings.keep(relative_templates + "/dev"),
                   nullptr, MS_BIND | MS_REC});
  }
  pre.push_back({FsStep::Mount, in_root("/dev/pts"), "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620"});
  pre.push_back({FsStep::Mkdir, in_root("/run/shm"), nullptr, nullptr, 0, nullptr, 01777, true});

  if (!policy.workspace.empty()) {
    if (!fs::is_directory(policy.workspace))
      return tl::unexpected(Error{"--workspace " + policy.workspace + " is not a directory"});
    plan_directories(".", policy.workspace_path, pre, strings);
    plan_host_bind(attach, in_root(policy.workspace_path), policy.workspace, pre, strings);
    plan.workdir = strings.keep(policy.workspace_path);
  } else if (!policy.root.empty()) {  // the working directory is the root's own
    plan_directories(".", policy.workspace_path, pre, strings);
    plan.workdir = strings.keep(policy.workspace_path);
  }
  for (const Mount& m : policy.mounts) {
    if (m.target.empty() || m.target[0] != '/')
      return tl::unexpected(Error{"--mount target '" + m.target + "' must be an absolute path"});
    if (!fs::exists(m.source))
      return tl::unexpected(Error{"--mount source " + m.source + " does not exist"});
    // The target and any missing directory above it (the view has no /mnt, say).
    const bool directory = fs::is_directory(m.source);
    const std::string made = directory ? m.target : fs::path(m.target).parent_path().string();
    if (made != "/") plan_directories(".", made, pre, strings);
    if (!directory) pre.push_back({FsStep::Touch, in_root(m.target)});
    plan_host_bind(attach, in_root(m.target), m.source, pre, strings);
    if (m.read_only) pre.push_back({FsStep::RemountReadOnly, in_root(m.target)});
  }

  for (const std::string& file : host.proc_masked)
    post.push_back(
        {FsStep::Mount, strings.keep(file), "/dev/null", nullptr, MS_BIND, nullptr, 0, true});
  for (const char* dir : kReadOnlyProc) {
    post.push_back({FsStep::Mount, dir, dir, nullptr, MS_BIND | MS_REC, nullptr, 0, true});
    post.push_back({FsStep::RemountReadOnly, dir, nullptr, nullptr, 0, nullptr, 0, true});
  }
  return {};
}

WARREN_CHILD_CODE int run_fs_step(const FsStep& s) {
  int rc = 0;
  switch (s.kind) {
    case FsStep::Mkdir:
      // PID 1 runs with umask 0, so a new directory has its mode at once. One that was there (a
      // snapshot's) gets it too where its owner allows.
      rc = mkdir(s.path, s.mode);
      if (rc != 0 && errno == EEXIST) {
        if (s.flags != kKeepMode) chmod(s.path, s.mode);
        rc = 0;
      }
      break;
    case FsStep::Symlink:  // a root from a snapshot has its links already
      rc = symlink(s.source, s.path);
      if (rc != 0 && errno == EEXIST) rc = 0;
      break;
    case FsStep::Touch: {
      const int fd = open(s.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      rc = fd < 0 ? -1 : close(fd);
      break;
    }
    case FsStep::WriteFile: {  // O_NOFOLLOW: the image's own link there is not followed
      const int fd = open(s.path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
      const std::size_t size = s.data ? std::strlen(s.data) : 0;
      rc = fd < 0 ? -1 : write(fd, s.data, size) == static_cast<ssize_t>(size) ? 0 : -1;
      if (fd >= 0) close(fd);
      break;
    }
    case FsStep::Mount:
      rc = mount(s.source, s.path, s.fstype, s.flags, s.data);
      break;
    case FsStep::DeviceNode:  // mode exact: umask aside
      rc = mknod(s.path, S_IFCHR | s.mode, static_cast<dev_t>(s.flags));
      if (rc == 0) rc = chmod(s.path, s.mode);
      break;
    case FsStep::EnterDirectory:
      rc = chdir(s.path);
      break;
    case FsStep::Attach:
      rc = static_cast<int>(
          syscall(SYS_move_mount, s.tree, "", AT_FDCWD, s.path, MOVE_MOUNT_F_EMPTY_PATH));
      close(s.tree);
      break;
    case FsStep::Restrict: {
      // Not a bind remount: that would also clear a read-only flag the host's mount has.
      mount_attr attributes{};
      attributes.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
      rc = static_cast<int>(syscall(SYS_mount_setattr, AT_FDCWD, s.path, AT_RECURSIVE, &attributes,
                                    sizeof attributes));
      break;
    }
    case FsStep::RemountReadOnly:
      // A bind remount must repeat the flags the kernel has locked (nosuid, nodev, noexec): the
      // step's flags, nosuid and nodev when it has none.
      rc = mount(nullptr, s.path, nullptr,
                 MS_BIND | MS_REMOUNT | MS_RDONLY | (s.flags ? s.flags : kSafe), nullptr);
      break;
  }
  return rc == 0 || s.optional ? 0 : errno;
}

WARREN_CHILD_CODE void apply_fs_steps(const ChildPlan& plan, const std::vector<FsStep>& steps) {
  // A relative path is inside the new root: named as the sandbox sees it, "/proc".
  for (const FsStep& s : steps)
    if (const int err = run_fs_step(s); err != 0)
      child_fail(plan, s.path, err, s.path[0] == '/' ? "" : "/");
}

}  // namespace warren::sandbox::detail
