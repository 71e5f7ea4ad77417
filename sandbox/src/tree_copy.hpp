// Copying a directory tree by descriptor: one component at a time with openat(O_NOFOLLOW) from
// directory descriptors, so that nothing planted in the source (a symlink, a rename race) can
// lead the walk out of it, and nothing but regular files and directories is ever opened. Used
// for snapshots (sandbox -> host) and workspaces (host -> sandbox).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

struct TreeCopyOptions {
  std::string purpose;  // the start of every error message: "snapshot", "workspace"
  // Leave out directories on another device than the top (mount points), as empty directories.
  bool same_device_only = false;
  // Added to every owner and group id below kIdCount (ids above it become the range's nobody).
  // 0 keeps owners as they are.
  unsigned id_shift = 0;
  // Every copy owned by this user and group instead (id_shift then does nothing).
  std::optional<std::pair<uid_t, gid_t>> owner;
  // What one copy may write, data bytes (holes are not written) and entries; 0: no limit. The
  // counts run over every copy_tree call given the same TreeCopyBudget.
  std::uint64_t max_bytes = 0, max_entries = 0;
};

// What the copies made so far have used, and the files with more than one link already copied
// (by source device and inode), so that a later link becomes a link to the first copy.
struct TreeCopyBudget {
  std::uint64_t bytes = 0, entries = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> links;  // -> path of the copy, from `to`'s top
};

// Copies the contents of the directory `from` into the existing directory `to`, keeping owners
// (shifted), modes (set-id bits dropped), symlinks, hard links (within one budget's copies into
// the same top), holes of sparse files, and times. Sockets and device nodes are left out.
Result<void> copy_tree(int from, int to, const TreeCopyOptions& options, TreeCopyBudget& budget);

// Copies the regular file `source` (a descriptor, O_PATH or not) to the new file `name` in the
// directory `to`, as copy_tree copies one.
Result<void> copy_file(int source, int to, const std::string& name, const TreeCopyOptions& options,
                       TreeCopyBudget& budget);

// Clears the set-user-id and set-group-id bits of every regular file under the host directory
// `dir` (a workspace), on its filesystem only, walking by descriptor without following links:
// nothing a sandbox made there keeps a set-id bit on the host once its command has ended.
void clear_set_id_bits(const std::string& dir);

// The regular file `name` in the directory `dir` opened for reading, without following a link
// and without opening anything else: it is looked at through an O_PATH descriptor first and
// opened again through that descriptor, non-blocking and never as a controlling terminal. -1
// with errno set (EINVAL: not a regular file) when it cannot be.
int open_regular_at(int dir, const char* name, int flags);

// The same for a descriptor from an O_PATH open (openat2 with RESOLVE_BENEATH, say).
int reopen_regular(int path_fd, int flags);

}  // namespace warren::sandbox::detail
