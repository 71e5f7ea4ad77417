#include "user.hpp"

#include <unistd.h>

#include "control_file.hpp"

namespace warren::sandbox::detail {

Result<void> write_id_maps(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (geteuid() == 0) {
    const std::string map = "0 " + std::to_string(kHostIdBase) + " " + std::to_string(kIdCount);
    if (auto r = write_control(proc + "/uid_map", map); !r) return r;
    return write_control(proc + "/gid_map", map);
  }
  // Rootless: one line each, and setgroups must be denied before gid_map may be written.
  if (auto r = write_control(proc + "/uid_map", "0 " + std::to_string(geteuid()) + " 1"); !r)
    return r;
  if (auto r = write_control(proc + "/setgroups", "deny"); !r) return r;
  return write_control(proc + "/gid_map", "0 " + std::to_string(getegid()) + " 1");
}

}  // namespace warren::sandbox::detail
