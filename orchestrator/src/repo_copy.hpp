// What of a repository `warren run` copies into its workspace: the working tree as git sees it
// (tracked files, and untracked ones that are not ignored) with the repository's .git, or
// everything; never Warren's own state (its databases and workspaces), wherever they are.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator::detail {

struct RepoListing {
  std::vector<sandbox::WorkspaceFile> files;  // for sandbox::make_workspace, from the repository
  std::vector<std::string> hidden;            // for sandbox::overlay_workspace: what it leaves out
  bool git = false;                           // listed by git (else: everything)
};

// The entries of `repo` a run's workspace copies, leaving out `excluded` (host paths: the
// database's files, the workspaces folder) and any top-level .warren/. RepoCopy::Git falls back
// to everything when `repo` is not in a git work tree; git's own refusals (a repository owned by
// another user, say) are errors naming the way out.
Result<RepoListing> list_repository(const std::filesystem::path& repo, RepoCopy copy,
                                    const std::vector<std::filesystem::path>& excluded);

// The same selection the other way round, for an overlay over the repository: what to hide
// (`hidden`: what git ignores, Warren's state, a .git that is a link to elsewhere).
Result<RepoListing> hidden_in_repository(const std::filesystem::path& repo, RepoCopy copy,
                                         const std::vector<std::filesystem::path>& excluded);

}  // namespace warren::orchestrator::detail
