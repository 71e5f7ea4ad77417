// The sandbox's filesystem: a tmpfs root holding read-only binds of the host system (or an image
// directory), a fresh /proc, a minimal /dev, the workspace, and masks over host secrets and
// kernel interfaces.
#pragma once

#include <string>

#include "plan.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// Fills plan.before_pivot and plan.after_pivot for `policy`. An Error for a policy that cannot
// work (a missing rootfs or workspace, a relative mount target).
// What the plans need to know about the host, looked up once per Runtime (a directory that
// appears on the host later is not seen until the next).
struct HostView {
  struct SystemEntry {
    std::string path;  // /usr, /bin, ...
    std::string link;  // not empty: a symlink to this (merged /usr)
  };
  std::vector<SystemEntry> system;       // the system directories this host has
  std::vector<std::string> masked;       // secrets to hide: /etc/shadow, ssh host keys, ...
  std::vector<std::string> proc_masked;  // /proc files this kernel has that are masked
  std::string staging;                   // where each sandbox assembles its root; created
  int last_capability = 63;              // /proc/sys/kernel/cap_last_cap
};
Result<HostView> look_at_host();

// `templates`: where the spawner made its templates (see plan_templates), or empty. With them,
// PID 1 starts in the spawner's namespace, which has no host mounts: host paths become Attach
// steps, whose trees the caller opens.
Result<void> plan_filesystem(const Policy& policy, const HostView& host,
                             const std::string& templates, ChildPlan& plan, Strings& strings);

// Steps that build at `dir`, in the spawner's own mount namespace, what each sandbox then binds in
// one call: the read-only system directories with their masks, and /dev. Every sandbox's mount
// namespace is a copy of the spawner's, so they are there to bind.
std::vector<FsStep> plan_templates(const HostView& host, const std::string& dir, Strings& strings);

// One step: 0, or the errno. System calls only.
WARREN_CHILD_CODE int run_fs_step(const FsStep& step);

// Child side: runs the steps in order.
WARREN_CHILD_CODE void apply_fs_steps(const ChildPlan& plan, const std::vector<FsStep>& steps);

}  // namespace warren::sandbox::detail
