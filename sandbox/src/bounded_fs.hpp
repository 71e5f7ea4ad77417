// The bounded filesystem of a workspace: a tmpfs (nosuid, nodev) of a workspace's limits, for
// make_workspace (the copy) and overlay_workspace (the writable layer).
#pragma once

#include <cstdint>
#include <string>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// tmpfs options: `bytes`, `files` inodes, the top owned by `owner` (user and group; 0: the
// caller's own, root's or a rootless user's) with `mode`.
std::string bounded_options(std::uint64_t bytes, std::uint64_t files, unsigned owner,
                            unsigned mode);
// The inodes `limits` allow: its files, or one per KiB of its bytes.
std::uint64_t inodes_for(WorkspaceLimits limits);
// A tmpfs of `limits` at the existing directory `dest`. Limits beyond_copy start as large as the
// machine's memory and are cut down once the copy is in.
Result<void> mount_bounded(const std::string& dest, WorkspaceLimits limits, unsigned owner,
                           unsigned mode);

}  // namespace warren::sandbox::detail
