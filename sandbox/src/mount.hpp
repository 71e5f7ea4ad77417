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
// `templates`: where the spawner made its templates (see plan_templates), or empty.
Result<void> plan_filesystem(const Policy& policy, const std::string& new_root,
                             const std::string& templates, ChildPlan& plan, Strings& strings);

// Steps that build at `dir`, in the spawner's own mount namespace, what each sandbox then binds in
// one call: the read-only system directories with their masks, and /dev. Every sandbox's mount
// namespace is a copy of the spawner's, so they are there to bind.
std::vector<FsStep> plan_templates(const std::string& dir, Strings& strings);

// One step: 0, or the errno. System calls only.
WARREN_CHILD_CODE int run_fs_step(const FsStep& step);

// Child side: runs the steps in order.
WARREN_CHILD_CODE void apply_fs_steps(const ChildPlan& plan, const std::vector<FsStep>& steps);

}  // namespace warren::sandbox::detail
