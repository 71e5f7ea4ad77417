// Writing an overlay workspace's changes into its folder (sandbox.hpp's write_back_workspace).
//
// The overlay's upper layer (overlay_workspace.cpp's layout) holds everything the sandboxes
// changed: a file whole once it was written (overlayfs copies a file up before its first change),
// new directories and links, and deletions as whiteouts (a 0:0 character device) or opaque
// directories (trusted.overlay.opaque "y": nothing below shows through). The overlay is mounted
// without redirects and without metacopy, so there is nothing else: a renamed directory is a new
// one plus a whiteout. Two passes, both by descriptor, never following a link:
//   1. what the folder must lose: an entry deleted or replaced by one of another kind (a link
//      where the workspace has a directory is removed, not entered), and the old contents of an
//      opaque directory;
//   2. the upper layer copied over what is left (copy_tree: holes and hard links kept, set-id bits
//      dropped, devices and sockets left out, every entry owned by the folder's owner).
// The upper layer lies on the workspace's own tmpfs, which only the ended sandboxes could write:
// it is as large as the workspace's limit at most, and nothing changes it while this runs.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "fd.hpp"
#include "tree_copy.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using detail::Fd;

constexpr int kMaxDepth = 256;

tl::unexpected<Error> write_back_error(const std::string& where, const char* what, int err) {
  return tl::unexpected(Error{"writing the workspace back: " + std::string(what) + " " + where +
                              ": " + std::strerror(err)});
}

Fd open_directory_at(int dir, const std::string& name) {
  return Fd(openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// The names in the directory `dir`, without "." and "..".
Result<std::vector<std::string>> names_in(int dir, const std::string& where) {
  const int listing_fd = dup(dir);
  if (listing_fd < 0) return write_back_error(where, "dup", errno);
  std::unique_ptr<DIR, int (*)(DIR*)> listing(fdopendir(listing_fd), closedir);
  if (!listing) {
    close(listing_fd);
    return write_back_error(where, "listing", errno);
  }
  rewinddir(listing.get());  // the offset is shared with `dir`, which may have been read before
  std::vector<std::string> names;
  while (const dirent* entry = readdir(listing.get())) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  return names;
}

// Removes `name` from the directory `dir`: a directory with everything in it, anything else as
// the entry itself (a link is removed, never followed).
Result<void> remove_at(int dir, const std::string& name, const std::string& where, int depth) {
  if (unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) return {};
  if (errno != EISDIR) return write_back_error(where, "removing", errno);
  if (depth > kMaxDepth) return write_back_error(where, "removing", ELOOP);
  Fd sub = open_directory_at(dir, name);
  if (sub.fd < 0) return write_back_error(where, "opening", errno);
  auto names = names_in(sub.fd, where);
  if (!names) return tl::unexpected(names.error());
  for (const std::string& inner : *names)
    if (auto removed = remove_at(sub.fd, inner, where + "/" + inner, depth + 1); !removed)
      return removed;
  if (unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
    return write_back_error(where, "removing", errno);
  return {};
}

// Marked by overlayfs: trusted.overlay.opaque as root, user.overlay.opaque rootless (userxattr).
bool is_opaque(int upper_dir) {
  for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque"}) {
    char value = 0;
    if (fgetxattr(upper_dir, name, &value, 1) == 1 && value == 'y') return true;
  }
  return false;
}

// Pass 1 over the directory `upper` of the upper layer and its counterpart `folder`.
Result<void> clear_for(int upper, int folder, const std::string& where, int depth) {
  if (depth > kMaxDepth) return write_back_error(where, "walking", ELOOP);
  auto names = names_in(upper, where);
  if (!names) return tl::unexpected(names.error());
  for (const std::string& name : *names) {
    const std::string path = where + "/" + name;
    struct stat changed {
    }, had{};
    if (fstatat(upper, name.c_str(), &changed, AT_SYMLINK_NOFOLLOW) != 0)
      return write_back_error(path, "stat", errno);
    if (fstatat(folder, name.c_str(), &had, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // new: pass 2 makes it
      return write_back_error(path, "stat", errno);
    }
    if (!S_ISDIR(changed.st_mode) || !S_ISDIR(had.st_mode)) {
      // Deleted (a whiteout), or replaced: the folder's entry goes, whatever it is.
      if (auto removed = remove_at(folder, name, path, depth); !removed) return removed;
      continue;
    }
    Fd upper_sub = open_directory_at(upper, name), folder_sub = open_directory_at(folder, name);
    if (upper_sub.fd < 0 || folder_sub.fd < 0) return write_back_error(path, "opening", errno);
    if (is_opaque(upper_sub.fd)) {  // made anew where one was deleted: the old contents go
      auto old = names_in(folder_sub.fd, path);
      if (!old) return tl::unexpected(old.error());
      for (const std::string& inner : *old)
        if (auto removed = remove_at(folder_sub.fd, inner, path + "/" + inner, depth + 1); !removed)
          return removed;
    }
    if (auto cleared = clear_for(upper_sub.fd, folder_sub.fd, path, depth + 1); !cleared)
      return cleared;
  }
  return {};
}

}  // namespace

Result<WorkspaceCopy> write_back_workspace(const std::string& workspace,
                                           const std::string& folder) {
  const std::string upper_path = workspace_layers(workspace) + "/upper";
  Fd upper(open(upper_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (upper.fd < 0) return write_back_error(upper_path, "opening", errno);
  Fd top(open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (top.fd < 0) return write_back_error(folder, "opening", errno);
  struct stat owner {};
  if (fstat(top.fd, &owner) != 0) return write_back_error(folder, "stat", errno);
  if (auto cleared = clear_for(upper.fd, top.fd, folder, 0); !cleared)
    return tl::unexpected(cleared.error());
  detail::TreeCopyOptions options;
  options.purpose = "writing the workspace back into " + folder;
  options.owner = std::pair{owner.st_uid, owner.st_gid};
  detail::TreeCopyBudget budget;
  if (auto copied = detail::copy_tree(upper.fd, top.fd, options, budget); !copied)
    return tl::unexpected(copied.error());
  return WorkspaceCopy{budget.entries, budget.bytes};
}

}  // namespace warren::sandbox
