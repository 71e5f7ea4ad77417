// The session's file API: paths resolved by openat2(RESOLVE_IN_ROOT) against the sandbox's root
// as PID 1 sees it (/proc/<pid>/root), so that ".." and symlinks planted inside (absolute or
// relative, or /proc magic links) can never leave it.
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fd.hpp"
#include "session_state.hpp"
#include "tree_copy.hpp"
#include "user.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

using detail::Fd;

// File operations act as the sandbox's root would: for the duration, this thread's filesystem ids
// become the sandbox root's host ids (files created belong to it; its permissions apply) and its
// effective capabilities are emptied. Changing the filesystem ids clears only the filesystem
// capabilities; without the rest, /proc/<pid>/maps of an undumpable process inside is refused
// to the host as it is to the sandbox (CAP_SYS_PTRACE would have opened it). Rootless the caller's
// ids are the sandbox root's already, but in Warren's own namespaces (join_own_namespace) it holds
// every capability over the sandboxes, nested in them: those are emptied too. Capabilities and
// filesystem ids are per thread, and the file operations do not yield, so no other work on this
// thread runs meanwhile.
class AsSandboxRoot {
 public:
  explicit AsSandboxRoot(unsigned host_ids) : shift_ids_(geteuid() == 0) {
    saved_header_.version = _LINUX_CAPABILITY_VERSION_3;
    // Without the sets read back they could not be restored: then nothing is changed, and the
    // file operation is refused (ok()).
    caps_saved_ = syscall(SYS_capget, &saved_header_, saved_) == 0;
    if (!caps_saved_) return;
    if (shift_ids_) {
      syscall(SYS_setfsgid, host_ids);
      syscall(SYS_setfsuid, host_ids);
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[2] = {saved_[0], saved_[1]};
    none[0].effective = none[1].effective = 0;
    syscall(SYS_capset, &header, none);
  }
  ~AsSandboxRoot() {
    if (!caps_saved_) return;
    if (shift_ids_) {
      syscall(SYS_setfsuid, 0);
      syscall(SYS_setfsgid, 0);
    }
    syscall(SYS_capset, &saved_header_, saved_);
  }
  bool ok() const { return caps_saved_; }
  AsSandboxRoot(const AsSandboxRoot&) = delete;
  AsSandboxRoot& operator=(const AsSandboxRoot&) = delete;

 private:
  bool shift_ids_;
  bool caps_saved_ = false;
  __user_cap_header_struct saved_header_{};
  __user_cap_data_struct saved_[2]{};
};

tl::unexpected<Error> file_error(const char* what, const std::string& path, int err) {
  return tl::unexpected(Error{std::string(what) + " " + path + ": " + std::strerror(err)});
}

const char* type_name(mode_t mode) {
  return S_ISDIR(mode)    ? "a directory"
         : S_ISCHR(mode)  ? "a character device"
         : S_ISBLK(mode)  ? "a block device"
         : S_ISFIFO(mode) ? "a fifo"
         : S_ISSOCK(mode) ? "a socket"
                          : "not a regular file";
}

tl::unexpected<Error> not_regular(const char* what, const std::string& path, mode_t mode) {
  return tl::unexpected(
      Error{std::string(what) + " " + path + ": " + type_name(mode) + ", not a regular file"});
}

FileInfo info_from(const std::string& name, const struct stat& st) {
  FileInfo info;
  info.name = name;
  info.size = static_cast<std::uint64_t>(st.st_size);
  info.mode = st.st_mode & 07777;
  info.type = S_ISREG(st.st_mode)   ? FileInfo::Type::File
              : S_ISDIR(st.st_mode) ? FileInfo::Type::Directory
              : S_ISLNK(st.st_mode) ? FileInfo::Type::Symlink
                                    : FileInfo::Type::Other;
  return info;
}

// Opens `path` inside the session's root. Relative paths start at the working directory.
int open_in_root(int root_fd, const std::string& workdir, const std::string& path,
                 std::uint64_t flags, mode_t mode = 0) {
  const std::string inside = path.starts_with('/') ? path : workdir + "/" + path;
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root_fd, inside.c_str(), &how, sizeof how));
}

// The regular file at `path` inside the root, opened for `flags` (O_RDONLY, or O_WRONLY |
// O_TRUNC). Whatever the sandbox put there is looked at before it is opened: an O_PATH
// descriptor opens nothing, so a device, fifo or socket is refused without being opened (opening
// /dev/tty would reach the operator's terminal; a fifo would block). The file is then opened
// again through that descriptor, which names the same inode however the path changes meanwhile,
// non-blocking and never as a controlling terminal. With `missing_ok`, a path that names nothing
// gives a descriptor of -1 instead of an error.
Result<Fd> open_regular(int root_fd, const std::string& workdir, const char* what,
                        const std::string& path, int flags, bool missing_ok = false) {
  Fd located{open_in_root(root_fd, workdir, path, O_PATH)};
  if (located.fd < 0 && errno == ENOENT && missing_ok) return Fd{-1};
  if (located.fd < 0) return file_error(what, path, errno);
  Fd opened{detail::reopen_regular(located.fd, flags)};
  if (opened.fd < 0 && errno == EINVAL) {
    struct stat st {};
    fstat(located.fd, &st);
    return not_regular(what, path, st.st_mode);
  }
  if (opened.fd < 0) return file_error(what, path, errno);
  return opened;
}

}  // namespace

Result<std::string> Session::read_file(const std::string& path, std::uint64_t max_bytes) {
  if (state_->root_fd < 0) return tl::unexpected(Error{"the session has no root"});
  AsSandboxRoot identity(state_->sandbox->host_ids);
  if (!identity.ok()) return tl::unexpected(Error{"the file API could not set its identity"});
  auto opened = open_regular(state_->root_fd, state_->workdir, "read", path, O_RDONLY);
  if (!opened) return tl::unexpected(opened.error());
  const Fd& f = *opened;
  struct stat st {};
  fstat(f.fd, &st);
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes)
    return tl::unexpected(Error{"read " + path + ": " + std::to_string(st.st_size) +
                                " bytes, more than the " + std::to_string(max_bytes) + " allowed"});
  std::string data;
  char buffer[65536];
  for (ssize_t n; (n = ::read(f.fd, buffer, sizeof buffer)) > 0;) {
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > max_bytes) return tl::unexpected(Error{"read " + path + ": too large"});
  }
  return data;
}

Result<void> Session::write_file(const std::string& path, std::string_view data, unsigned mode) {
  if (state_->root_fd < 0) return tl::unexpected(Error{"the session has no root"});
  AsSandboxRoot identity(state_->sandbox->host_ids);
  if (!identity.ok()) return tl::unexpected(Error{"the file API could not set its identity"});
  // An existing file is checked before it is opened (open_regular); a new one is made with
  // O_EXCL, which follows no link and opens nothing that was there before.
  auto opened =
      open_regular(state_->root_fd, state_->workdir, "write", path, O_WRONLY | O_TRUNC, true);
  if (!opened) return tl::unexpected(opened.error());
  if (opened->fd < 0) {
    opened->fd = open_in_root(state_->root_fd, state_->workdir, path,
                              O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_NONBLOCK, 0600);
    if (opened->fd < 0) return file_error("write", path, errno);
    // Set after the open, not through it: the process's umask is no part of what was asked. No
    // set-id bit: those the sandbox sets itself, if it may.
    fchmod(opened->fd, mode & 0777);
  }
  const Fd& f = *opened;
  for (std::size_t done = 0; done < data.size();) {
    const ssize_t n = ::write(f.fd, data.data() + done, data.size() - done);
    if (n < 0) return file_error("write", path, errno);
    done += static_cast<std::size_t>(n);
  }
  return {};
}

Result<std::vector<FileInfo>> Session::list(const std::string& path) {
  if (state_->root_fd < 0) return tl::unexpected(Error{"the session has no root"});
  AsSandboxRoot identity(state_->sandbox->host_ids);
  if (!identity.ok()) return tl::unexpected(Error{"the file API could not set its identity"});
  // O_DIRECTORY: anything else is refused before it is opened.
  const int fd = open_in_root(state_->root_fd, state_->workdir, path,
                              O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return file_error("list", path, errno);
  DIR* dir = fdopendir(fd);
  if (!dir) {
    close(fd);
    return file_error("list", path, errno);
  }
  std::vector<FileInfo> entries;
  while (const dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
      entries.push_back(info_from(name, st));
  }
  closedir(dir);
  std::sort(entries.begin(), entries.end(),
            [](const FileInfo& a, const FileInfo& b) { return a.name < b.name; });
  return entries;
}

Result<void> Session::make_directories(const std::string& path) {
  if (state_->root_fd < 0) return tl::unexpected(Error{"the session has no root"});
  AsSandboxRoot identity(state_->sandbox->host_ids);
  if (!identity.ok()) return tl::unexpected(Error{"the file API could not set its identity"});
  const std::string inside = path.starts_with('/') ? path : state_->workdir + "/" + path;
  // Component by component: each parent is opened inside the root (so a link planted on the way
  // resolves inside it too), and the next name is made in that very folder, which mkdirat never
  // follows a link to make.
  std::string made;
  for (std::size_t at = 1; at <= inside.size();) {
    const std::size_t end = std::min(inside.find('/', at), inside.size());
    const std::string name = inside.substr(at, end - at);
    at = end + 1;
    if (name.empty() || name == ".") continue;
    const std::string parent = made.empty() ? "/" : made;
    made += "/" + name;
    Fd folder{open_in_root(state_->root_fd, "/", made, O_PATH | O_DIRECTORY)};
    if (folder.fd >= 0) continue;
    if (errno != ENOENT) return file_error("make", made, errno);
    Fd above{open_in_root(state_->root_fd, "/", parent, O_PATH | O_DIRECTORY)};
    if (above.fd < 0) return file_error("make", parent, errno);
    if (mkdirat(above.fd, name.c_str(), 0755) != 0) {
      // Made meanwhile by the sandbox, or a link that leads nowhere: a folder, or an error.
      if (errno != EEXIST) return file_error("make", made, errno);
      Fd there{open_in_root(state_->root_fd, "/", made, O_PATH | O_DIRECTORY)};
      if (there.fd < 0) return file_error("make", made, errno);
      continue;
    }
    // 0755 whatever this process's umask: set through the folder itself, opened without
    // following a link (one swapped in meanwhile is refused, never followed).
    Fd made_folder{openat(above.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)};
    if (made_folder.fd >= 0) fchmod(made_folder.fd, 0755);
  }
  return {};
}

Result<FileInfo> Session::stat(const std::string& path) {
  if (state_->root_fd < 0) return tl::unexpected(Error{"the session has no root"});
  AsSandboxRoot identity(state_->sandbox->host_ids);
  if (!identity.ok()) return tl::unexpected(Error{"the file API could not set its identity"});
  Fd f{open_in_root(state_->root_fd, state_->workdir, path, O_PATH | O_NOFOLLOW)};
  if (f.fd < 0) return file_error("stat", path, errno);
  struct stat st {};
  if (fstat(f.fd, &st) != 0) return file_error("stat", path, errno);
  const std::size_t slash = path.find_last_of('/');
  return info_from(slash == std::string::npos ? path : path.substr(slash + 1), st);
}

}  // namespace warren::sandbox
