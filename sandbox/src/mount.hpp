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
Result<void> plan_filesystem(const Policy& policy, const std::string& new_root, ChildPlan& plan,
                             Strings& strings);

// Child side: runs the steps in order.
WARREN_CHILD_CODE void apply_fs_steps(const ChildPlan& plan, const std::vector<FsStep>& steps);

}  // namespace warren::sandbox::detail
