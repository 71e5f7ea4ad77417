// User namespace: the sandbox's root is an unprivileged id range on the host, never host root.
#pragma once

#include <sys/types.h>

#include <string>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// Host ids the sandbox's ids 0..65535 map to when Warren runs as root.
inline constexpr unsigned kHostIdBase = 100000;
inline constexpr unsigned kIdCount = 65536;

// Writes uid_map and gid_map of the child `pid`. As root: 0..65535 -> 100000..165535. As an
// ordinary user (rootless): the sandbox's root is the user's own id, the only mapping allowed.
Result<void> write_id_maps(pid_t pid);

}  // namespace warren::sandbox::detail
