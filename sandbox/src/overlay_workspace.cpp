// A workspace over a folder instead of a copy of it (sandbox.hpp's overlay_workspace).
//
// Layout, for the workspace DEST:
//   DEST.layers/          a tmpfs of the workspace's limits (nosuid, nodev): all the agent writes
//     lower/0 lower/1 ... the folders, top first, each through an idmapped mount (owners shifted
//                         into the range): one for a repository, an image's layers for an image
//     upper/ work/        the overlay's writable layer, and overlayfs's work folder
//   DEST                  the overlay of upper/ on lower/, what sandboxes are given
// The idmapped mount is why no file need be copied: the sandbox's root owns, through it, what
// host root owns, as it would own a copy (make_workspace). overlayfs copies a file up, with the
// credentials of whoever mounted it (host root), the first time a sandbox writes it, and the
// folder itself is never written. What is hidden is whited out in upper/ (a 0:0 character device
// is overlayfs's whiteout). Rootless, all of it is mounted in Warren's own namespaces
// (own_namespace.cpp), and the folders are bound as they are: the sandbox's root is the caller.
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "bounded_fs.hpp"
#include "fd.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using detail::Fd;

tl::unexpected<Error> overlay_error(const std::string& message) {
  return tl::unexpected(Error{"workspace: " + message});
}

// `folder` (a host path) seen through an idmapped, read-only, nosuid, nodev mount at `at`, shifted
// by the id-shifting namespace `userns`; with `userns` -1 (rootless), not shifted. Rootless, the
// folder's own mounts come along: a namespace of an ordinary user's may not uncover what they
// hide.
Result<void> mount_shifted(const std::string& folder, const std::string& at, int userns) {
  const unsigned recursive = userns < 0 ? AT_RECURSIVE : 0;
  Fd tree(static_cast<int>(syscall(SYS_open_tree, AT_FDCWD, folder.c_str(),
                                   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | recursive)));
  if (tree.fd < 0) return overlay_error("open_tree " + folder + ": " + std::strerror(errno));
  if (auto shifted = detail::shift_tree(tree.fd, userns, folder); !shifted)
    return overlay_error(shifted.error().message);
  if (syscall(SYS_move_mount, tree.fd, "", AT_FDCWD, at.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return overlay_error("move_mount " + at + ": " + std::strerror(errno));
  return {};
}

// `relative` whited out in `upper`, its parent folders made as the topmost lower layer that has
// them has them (an upper folder's owner and mode are what the overlay shows).
Result<void> white_out(const std::vector<std::string>& lowers, const std::string& upper,
                       const std::filesystem::path& relative) {
  std::filesystem::path inside, at_upper = upper;
  for (const auto& part : relative.parent_path()) {
    inside /= part;
    at_upper /= part;
    struct stat st {};
    bool found = false;
    for (const std::string& lower : lowers)
      if (lstat((std::filesystem::path(lower) / inside).c_str(), &st) == 0) {
        found = S_ISDIR(st.st_mode);
        break;
      }
    if (!found) return {};  // nothing to hide
    if (mkdir(at_upper.c_str(), st.st_mode & 07777) == 0) {
      lchown(at_upper.c_str(), st.st_uid, st.st_gid);
      const timespec times[2] = {st.st_atim, st.st_mtim};
      utimensat(AT_FDCWD, at_upper.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
  const std::string target = upper + "/" + relative.string();
  if (mknod(target.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0 && errno != EEXIST)
    return overlay_error("hiding " + relative.string() + ": " + std::strerror(errno));
  return {};
}

}  // namespace

std::string workspace_layers(const std::string& workspace) {
  return workspace + ".layers";
}

Result<void> overlay_workspace(const std::vector<std::string>& folders,
                               const std::vector<std::string>& hidden, const std::string& dest,
                               unsigned host_ids, WorkspaceLimits limits) {
  if (folders.empty()) return overlay_error("an overlay needs at least one folder");
  // overlayfs stacks at most 500 lower layers.
  if (folders.size() > 500) return overlay_error("an overlay cannot stack more than 500 folders");
  if (!can_mount_workspaces())
    return overlay_error("an overlay over " + folders.front() +
                         " needs root, or Warren's own namespaces rootless");
  const bool rootless = geteuid() != 0;
  if (!rootless && host_ids && !detail::range_starting_at(host_ids))
    return overlay_error("host ids " + std::to_string(host_ids) + " begin no id range");
  const unsigned shift = host_ids ? host_ids : detail::kHostIdBase;
  if (dest.find_first_of(",:\\") != std::string::npos)  // overlayfs's option separators
    return overlay_error("an overlay cannot be made at " + dest + " (it has ',', ':' or '\\')");
  const std::string layers = workspace_layers(dest);
  const std::string upper = layers + "/upper", work = layers + "/work";
  std::vector<std::string> lowers;
  for (const std::string& folder : folders) {
    struct stat top {};
    if (stat(folder.c_str(), &top) != 0 || !S_ISDIR(top.st_mode))
      return overlay_error(folder + " is not a folder");
    lowers.push_back(layers + "/lower/" + std::to_string(lowers.size()));
  }
  if (mkdir(dest.c_str(), 0755) != 0)
    return overlay_error("creating " + dest + ": " + std::strerror(errno));
  auto fail = [&](const Result<void>& error) -> Result<void> {
    (void)remove_workspace(dest);  // nothing half-made is left behind
    return error;
  };
  if (mkdir(layers.c_str(), 0700) != 0)
    return fail(overlay_error("creating " + layers + ": " + std::strerror(errno)));
  // Root's alone on the host: lower/ shows the folder whatever the folders above it allow.
  if (auto bounded = detail::mount_bounded(layers, limits, 0, 0700); !bounded) return fail(bounded);
  // Rootless, overlayfs marks opaque folders with user.* attributes on the writable layer: a
  // tmpfs without them (before Linux 6.6) would mount, then fail a folder made where a deleted one
  // was with EIO.
  if (rootless && setxattr(layers.c_str(), "user.warren.probe", "1", 1, 0) != 0)
    return fail(
        overlay_error("this kernel's tmpfs keeps no user.* attributes (Linux 6.6 has "
                      "them), which an overlay made rootless needs: " +
                      std::string(std::strerror(errno))));
  std::vector<std::string> dirs = {layers + "/lower", upper, work};
  dirs.insert(dirs.end(), lowers.begin(), lowers.end());
  for (const std::string& dir : dirs)
    if (mkdir(dir.c_str(), 0755) != 0)
      return fail(overlay_error("creating " + dir + ": " + std::strerror(errno)));
  // Rootless the sandbox's root is the caller: its folders are bound as they are (-1: no shift).
  Result<Fd> userns = rootless ? Result<Fd>(Fd(-1)) : detail::id_shifting_namespace(shift);
  if (!userns) return fail(overlay_error(userns.error().message));
  for (std::size_t i = 0; i < folders.size(); ++i)
    if (auto shifted = mount_shifted(folders[i], lowers[i], userns->fd); !shifted)
      return fail(shifted);
  // The top folder as the sandbox sees it: the overlay's top shows upper's owner and mode.
  struct stat seen {};
  stat(lowers.front().c_str(), &seen);
  chown(upper.c_str(), seen.st_uid, seen.st_gid);
  chmod(upper.c_str(), seen.st_mode & 07777);
  // What lies in a hidden folder needs no whiteout of its own (and could have none: the folder is
  // a whiteout already). Shortest first, so that every folder is seen before what it holds.
  std::vector<std::string> sorted = hidden;
  std::sort(sorted.begin(), sorted.end(),
            [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
  std::set<std::string> done;
  for (const std::string& path : sorted) {
    bool inside = false;
    for (auto at = path.find('/'); at != std::string::npos && !inside; at = path.find('/', at + 1))
      inside = done.contains(path.substr(0, at));
    if (inside || !done.insert(path).second) continue;
    if (auto out = white_out(lowers, upper, path); !out) return fail(out);
  }
  std::string lowerdir;  // overlayfs's order: the topmost first
  for (const std::string& lower : lowers) lowerdir += (lowerdir.empty() ? "" : ":") + lower;
  // No index, no redirects, no metacopy: nothing in the layers but plain files and whiteouts.
  // Rootless, overlayfs keeps its attributes as user.overlay.* (the trusted ones are root's), and
  // redirects are neither made nor followed ("off" would follow, which userxattr refuses).
  const std::string options = "lowerdir=" + lowerdir + ",upperdir=" + upper + ",workdir=" + work +
                              ",index=off,metacopy=off" +
                              (rootless ? ",redirect_dir=nofollow,userxattr" : ",redirect_dir=off");
  if (mount("warren-workspace", dest.c_str(), "overlay", MS_NOSUID | MS_NODEV, options.c_str()) !=
      0)
    return fail(overlay_error("the overlay at " + dest + ": " + std::strerror(errno)));
  return {};
}

}  // namespace warren::sandbox
