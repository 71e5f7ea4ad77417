// `--workspace DIR` of `warren sandbox exec` and `shell` (docs/security.md, "Bounded workspaces"):
// the sandbox works on an overlay over DIR whose writable layer is a tmpfs of --disk, made in a
// folder of this process's own under /run/warren/folders (rootless, under the user's runtime
// folder, mounted in Warren's own namespaces), and what it changed is written into DIR once it has
// ended (sandbox::write_back_workspace). So what a command adds is bounded on the host's disk
// (ENOSPC inside, a note outside), a set-id file it makes exists only on that nosuid tmpfs,
// private, and DIR's path shows nowhere inside. Where no overlay can be made, DIR is bound as it
// is, and a note says that it is not bounded.
#include <signal.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <filesystem>

#include "sandbox_commands.hpp"

namespace warren::cli {

namespace sb = warren::sandbox;
namespace fs = std::filesystem;

namespace {

// Where the overlays are made: root's, or the user's own.
sb::Result<std::string> folders() {
  if (geteuid() == 0) return std::string("/run/warren/folders");
  auto runtime = sb::user_runtime_dir();
  if (!runtime) return tl::unexpected(runtime.error());
  return *runtime + "/folders";
}

// What processes that have ended left in `folders` (a kill before their cleanup): their folders'
// mounts detached, then removed. A folder is named after its process.
void sweep_ended(const std::string& folders) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folders, ec)) {
    const std::string name = entry.path().filename();
    const long pid = std::strtol(name.c_str(), nullptr, 10);
    if (pid <= 0 || kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    (void)sb::remove_workspace(entry.path().string());
  }
}

}  // namespace

FolderWorkspace::FolderWorkspace(std::string folder, std::string place, sb::IdRange ids)
    : folder_(std::move(folder)), place_(std::move(place)), ids_(std::move(ids)) {}

FolderWorkspace::~FolderWorkspace() {
  (void)sb::remove_workspace(place_);
}

sb::Result<std::unique_ptr<FolderWorkspace>> FolderWorkspace::open(const std::string& folder,
                                                                   std::uint64_t bytes) {
  std::error_code ec;
  // With no trailing '/' ("." is the folder's own name in the notes, not "name/").
  const std::string absolute =
      (fs::absolute(folder, ec) / "").lexically_normal().parent_path().string();
  if (ec || !fs::is_directory(absolute, ec))
    return tl::unexpected(sb::Error{"--workspace " + folder + " is not a directory"});
  auto made_in = folders();
  if (!made_in) return tl::unexpected(made_in.error());
  fs::create_directories(*made_in, ec);
  fs::permissions(*made_in, fs::perms::owner_all, ec);
  if (ec) return tl::unexpected(sb::Error{"cannot create " + *made_in});
  sweep_ended(*made_in);
  auto ids = sb::IdRange::take();
  if (!ids) return tl::unexpected(ids.error());
  // Named after this process (sweep_ended reads it), unique within it by mkdtemp's suffix.
  std::string place = *made_in + "/" + std::to_string(getpid()) + "-XXXXXX";
  if (!mkdtemp(place.data())) return tl::unexpected(sb::Error{"cannot create " + place});
  std::unique_ptr<FolderWorkspace> workspace(new FolderWorkspace(absolute, place, std::move(*ids)));
  sb::WorkspaceLimits limits;
  limits.bytes = bytes;
  if (auto made_overlay = sb::overlay_workspace({absolute}, {}, workspace->workspace(),
                                                workspace->ids_.base(), limits);
      !made_overlay)
    return tl::unexpected(made_overlay.error());
  return workspace;
}

void FolderWorkspace::use_in(sb::Policy& policy) const {
  policy.workspace = workspace();
  policy.host_ids = ids_.base();
}

sb::Result<std::vector<std::string>> FolderWorkspace::write_back() {
  std::vector<std::string> notes;
  struct statvfs room {};
  if (statvfs(sb::workspace_layers(workspace()).c_str(), &room) == 0 &&
      (room.f_bavail == 0 || room.f_favail == 0))
    notes.push_back(
        "the workspace is full (--disk): commands met ENOSPC; what fit is written "
        "back into " +
        folder_);
  auto written = sb::write_back_workspace(workspace(), folder_);
  if (!written) return tl::unexpected(written.error());
  return notes;
}

}  // namespace warren::cli
