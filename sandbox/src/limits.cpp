// The command's process: rlimits, no inherited descriptors, no capabilities, no_new_privs. Run in
// the child just before the seccomp filter and exec.
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "plan.hpp"

namespace warren::sandbox::detail {

WARREN_CHILD_CODE void apply_process_limits(const ChildPlan& plan, int keep_fd) {
  for (const RlimitSetting& r : plan.rlimits)
    if (setrlimit(r.resource, &r.value) != 0) child_fail(plan, "setrlimit", errno);

  // Every inherited descriptor but stdio (and the error pipe, which is close-on-exec) is closed.
  if (keep_fd > 3) syscall(SYS_close_range, 3u, static_cast<unsigned>(keep_fd - 1), 0u);
  syscall(SYS_close_range, static_cast<unsigned>(keep_fd + 1), ~0u, 0u);

  // Capabilities: the bounding set holds only the kept ones already (PID 1 dropped the rest, and
  // the command inherits it), then the ambient set, then the permitted/effective/inheritable sets
  // keep those and no more. The command runs as its namespace's root, whose exec keeps the
  // bounding set's capabilities; no_new_privs then caps them at the permitted set set here.
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  for (int i = 0; i < 2; ++i) {
    const auto bits = static_cast<std::uint32_t>(plan.kept_capabilities >> (32 * i));
    data[i].permitted = data[i].effective = data[i].inheritable = bits;
  }
  if (syscall(SYS_capset, &header, data) != 0) child_fail(plan, "dropping capabilities", errno);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) child_fail(plan, "no_new_privs", errno);
}

}  // namespace warren::sandbox::detail
