// User namespace: the sandbox's root is an unprivileged id range on the host, never host root.
#pragma once

#include <sys/types.h>

#include <map>
#include <mutex>
#include <string>

#include "fd.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// Host ids the sandbox's ids 0..65535 map to when Warren runs as root: one of kIdRanges ranges,
// kHostIdBase + k * kIdCount. Range 0 (100000..165535) is the one shared by sandboxes nothing
// assigns another (a workspace made without a range); IdRange::take hands out the others, one
// holder at a time across the host.
inline constexpr unsigned kHostIdBase = 100000;
inline constexpr unsigned kIdCount = 65536;
inline constexpr unsigned kIdRanges = 4096;

// The range that begins at `uid`, or 0 when none does.
unsigned range_starting_at(unsigned uid);

// Writes uid_map and gid_map of the child `pid`. As root: 0..65535 -> host_ids..host_ids+65535.
// As an ordinary user (rootless): the sandbox's root is the user's own id, the only mapping
// allowed, and `host_ids` is ignored.
Result<void> write_id_maps(pid_t pid, unsigned host_ids);

// A user namespace whose ids 0..65535 are the host's `shift`..`shift`+65535, held by its
// descriptor: what an idmapped mount takes (root only).
Result<Fd> id_shifting_namespace(unsigned shift);

// Makes the detached tree `tree` (open_tree OPEN_TREE_CLONE) an idmapped, read-only, nosuid,
// nodev mount through `userns`: a file host uid N owns is seen as owned by uid N of that
// namespace's range, on the host as in the sandbox. With `userns` -1 (rootless), read-only, nosuid
// and nodev, its owners as they are. `what` names the tree in the error.
Result<void> shift_tree(int tree, int userns, const std::string& what);

// The id-shifting namespaces sandboxes' images are mounted through, one per range, made on first
// use and kept: making one forks a child.
class IdShifts {
 public:
  Result<int> namespace_for(unsigned shift);

 private:
  std::mutex mutex_;
  std::map<unsigned, Fd> namespaces_;
};

}  // namespace warren::sandbox::detail
