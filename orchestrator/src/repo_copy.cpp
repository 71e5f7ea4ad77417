#include "repo_copy.hpp"

#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

extern char** environ;

namespace warren::orchestrator::detail {

namespace {

namespace fs = std::filesystem;

// `path` is `folder` or below it (both relative, normal, '/'-separated).
bool within(const std::string& path, const std::string& folder) {
  return path == folder ||
         (path.size() > folder.size() && path.starts_with(folder) && path[folder.size()] == '/');
}

bool excluded_entry(const std::string& path, const std::vector<std::string>& excluded) {
  return std::any_of(excluded.begin(), excluded.end(),
                     [&](const std::string& x) { return within(path, x); });
}

struct GitOutput {
  int status = -1;  // -1: git could not be started
  std::string out, err;
};

std::string read_all(int fd) {
  std::string data;
  char buffer[65536];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data;
}

// `git ARGS` on the host, in the operator's own repository: their git, their configuration
// (ignore rules included), except that no fsmonitor hook is started. stderr goes to a memfd so
// that a long listing on stdout cannot block on it.
GitOutput run_git(std::vector<std::string> args) {
  args.insert(args.begin(), {"git", "-c", "core.fsmonitor=false"});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {};
  const int err = memfd_create("git-stderr", MFD_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  if (err >= 0) posix_spawn_file_actions_adddup2(&actions, err, 2);
  pid_t pid = -1;
  const int spawned = posix_spawnp(&pid, "git", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  GitOutput r;
  if (spawned == 0) {
    r.out = read_all(out[0]);
    int raw = 0;
    while (waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
    }
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128;
    if (err >= 0 && lseek(err, 0, SEEK_SET) == 0) r.err = read_all(err);
  }
  close(out[0]);
  if (err >= 0) close(err);
  return r;
}

// git's -z output, one path per entry.
std::vector<std::string> split_paths(const std::string& out) {
  std::vector<std::string> paths;
  for (std::size_t at = 0; at < out.size();) {
    const std::size_t end = std::min(out.find('\0', at), out.size());
    paths.push_back(out.substr(at, end - at));
    at = end + 1;
  }
  return paths;
}

tl::unexpected<Error> git_refused(const fs::path& repo, const GitOutput& git) {
  return tl::unexpected(Error{"git cannot list the files of " + repo.string() + " (" +
                              git.err.substr(0, git.err.find('\n')) +
                              "); --copy all copies the folder without git"});
}

// Everything of `repo` below the relative folder `dir` ("" for the top), as few entries as the
// exclusions allow: a folder with nothing excluded below it is one entry.
void list_all(const fs::path& repo, const std::string& dir,
              const std::vector<std::string>& excluded, std::vector<sandbox::WorkspaceFile>& out) {
  const bool cut = std::any_of(excluded.begin(), excluded.end(),
                               [&](const std::string& x) { return dir.empty() || within(x, dir); });
  if (!cut) {
    out.push_back({dir.empty() ? "." : dir, dir, false});
    return;
  }
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(repo / dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string path = dir.empty() ? name : dir + "/" + name;
    if (excluded_entry(path, excluded)) continue;
    const bool below = std::any_of(excluded.begin(), excluded.end(),
                                   [&](const std::string& x) { return within(x, path); });
    if (below && entry.is_directory(ec) && !entry.is_symlink(ec))
      list_all(repo, path, excluded, out);
    else
      out.push_back({path, path, false});
  }
}

// The working tree as git sees it, or nullopt when `repo` is not in a git work tree.
Result<std::optional<std::vector<sandbox::WorkspaceFile>>> list_git(
    const fs::path& repo, const std::vector<std::string>& excluded) {
  using Listed = std::optional<std::vector<sandbox::WorkspaceFile>>;
  GitOutput listed = run_git(
      {"-C", repo.string(), "ls-files", "-z", "--cached", "--others", "--exclude-standard"});
  if (listed.status == -1) return Listed{};  // no git: not a repository either
  if (listed.status != 0) {
    if (listed.err.find("not a git repository") != std::string::npos) return Listed{};
    return git_refused(repo, listed);
  }
  std::vector<sandbox::WorkspaceFile> files;
  std::set<std::string> seen;  // an unmerged path is listed once per stage
  struct stat st {};
  // Relative to `repo` (git's working directory), below it only.
  for (const std::string& path : split_paths(listed.out)) {
    if (path.empty() || excluded_entry(path, excluded) || !seen.insert(path).second) continue;
    if (::lstat((repo / path).c_str(), &st) != 0) continue;  // deleted, not yet staged
    files.push_back({path, path, false});
  }
  if (::lstat((repo / ".git").c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    files.push_back({".git", ".git", false});  // the history, for the agent's git
  return Listed{std::move(files)};
}

// The repository's real path and Warren's state below it (relative paths), or an error when
// there is none or it is itself part of that state.
Result<std::pair<fs::path, std::vector<std::string>>> find_repository(
    const fs::path& repo, const std::vector<fs::path>& excluded) {
  std::error_code ec;
  const fs::path top = fs::canonical(repo, ec);
  if (ec) return tl::unexpected(Error{"no repository at " + repo.string() + ": " + ec.message()});
  std::vector<std::string> relative{".warren"};
  for (const fs::path& x : excluded) {
    const fs::path inside = fs::weakly_canonical(x, ec).lexically_relative(top);
    if (ec || inside.empty() || *inside.begin() == "..") continue;
    if (inside == ".")
      return tl::unexpected(Error{"the repository " + repo.string() + " is Warren's own " +
                                  x.string() + ": give a repository that holds it, or another"});
    relative.push_back(inside.string());
  }
  return std::pair{top, std::move(relative)};
}

}  // namespace

Result<RepoListing> list_repository(const fs::path& repo, RepoCopy copy,
                                    const std::vector<fs::path>& excluded) {
  auto found = find_repository(repo, excluded);
  if (!found) return tl::unexpected(found.error());
  const auto& [top, relative] = *found;
  RepoListing listing;
  if (copy == RepoCopy::Git) {
    auto listed = list_git(top, relative);
    if (!listed) return tl::unexpected(listed.error());
    if (*listed) {
      listing.files = std::move(**listed);
      listing.git = true;
      return listing;
    }
  }
  list_all(top, "", relative, listing.files);
  return listing;
}

Result<RepoListing> hidden_in_repository(const fs::path& repo, RepoCopy copy,
                                         const std::vector<fs::path>& excluded) {
  auto found = find_repository(repo, excluded);
  if (!found) return tl::unexpected(found.error());
  const fs::path top = found->first;
  RepoListing listing;
  listing.hidden = std::move(found->second);
  struct stat st {};
  if (::lstat((top / ".git").c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    listing.hidden.push_back(".git");  // a link to a repository elsewhere, unreachable inside
  if (copy == RepoCopy::All) return listing;
  // Untracked and ignored, folders whole: what git's working tree leaves out.
  GitOutput ignored = run_git({"-C", top.string(), "ls-files", "-z", "--others", "--ignored",
                               "--exclude-standard", "--directory"});
  if (ignored.status == -1 ||
      (ignored.status != 0 && ignored.err.find("not a git repository") != std::string::npos))
    return listing;  // not a repository: everything
  if (ignored.status != 0) return git_refused(top, ignored);
  listing.git = true;
  for (std::string path : split_paths(ignored.out)) {
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (!path.empty() && !excluded_entry(path, listing.hidden)) listing.hidden.push_back(path);
  }
  return listing;
}

}  // namespace warren::orchestrator::detail
