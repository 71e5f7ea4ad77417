// Snapshots: a copy of a session's writable state (its root layer and its workspace) in a host
// directory, from which any number of sandboxes start as copy-on-write overlays (mount.cpp).
//
// The copy walks the sandbox's root as PID 1 sees it, one component at a time with
// openat(O_NOFOLLOW) from directory descriptors, so that nothing the sandbox planted can lead the
// walk out. A directory on another device than its parent is a mount point (the system binds,
// /proc, /dev, the workspace) and is left out of the root layer.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include <dirent.h>

#include "session_state.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

namespace {

constexpr int kMaxDepth = 256;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

class TreeCopy {
 public:
  // Copies the directory `from` (its contents) into the existing directory `to`.
  Result<void> directory(int from, int to, dev_t device, const std::string& where, int depth) {
    if (depth > kMaxDepth) return fail(where, "directories nested too deep", 0);
    const int listing_fd = dup(from);
    if (listing_fd < 0) return fail(where, "dup", errno);
    std::unique_ptr<DIR, int (*)(DIR*)> listing(fdopendir(listing_fd), closedir);
    if (!listing) {
      close(listing_fd);
      return fail(where, "listing", errno);
    }
    while (dirent* entry = readdir(listing.get())) {
      const std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      if (auto copied = one(from, to, name, device, where + "/" + name, depth); !copied)
        return copied;
    }
    return {};
  }

 private:
  Result<void> one(int from, int to, const std::string& name, dev_t device,
                   const std::string& where, int depth) {
    struct stat st {};
    if (fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return errno == ENOENT ? Result<void>{} : fail(where, "stat", errno);  // gone meanwhile
    // Set-id bits are dropped: the copy lies on the host, where they would mean something else.
    const mode_t mode = st.st_mode & 01777;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(to, name.c_str(), 0700) != 0 && errno != EEXIST)
        return fail(where, "mkdir", errno);
      if (st.st_dev == device) {  // another device: a mount point, kept as an empty directory
        Fd source(openat(from, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        Fd target(openat(to, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (source.fd < 0 || target.fd < 0) return fail(where, "open", errno);
        if (auto r = directory(source.fd, target.fd, device, where, depth + 1); !r) return r;
      }
    } else if (S_ISREG(st.st_mode)) {
      if (auto r = file(from, to, name, where); !r) return r;
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
      const ssize_t n = readlinkat(from, name.c_str(), target.data(), target.size());
      if (n < 0) return fail(where, "readlink", errno);
      target.resize(static_cast<std::size_t>(n));
      if (symlinkat(target.c_str(), to, name.c_str()) != 0) return fail(where, "symlink", errno);
    } else if (S_ISFIFO(st.st_mode)) {
      if (mknodat(to, name.c_str(), S_IFIFO | 0600, 0) != 0) return fail(where, "mkfifo", errno);
    } else {
      return {};  // sockets and device nodes mean nothing in a copy
    }
    // Owners as they are on the host (the sandbox's ids, 100000 and up), then modes (chown clears
    // set-id bits, and they are dropped anyway), then times: builds compare them.
    if (fchownat(to, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(where, "chown", errno);
    if (!S_ISLNK(st.st_mode) && fchmodat(to, name.c_str(), mode, 0) != 0)
      return fail(where, "chmod", errno);
    const timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(to, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return {};
  }

  Result<void> file(int from, int to, const std::string& name, const std::string& where) {
    Fd source(openat(from, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (source.fd < 0) return fail(where, "open", errno);
    Fd target(openat(to, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (target.fd < 0) return fail(where, "create", errno);
    while (true) {
      const ssize_t n =
          copy_file_range(source.fd, nullptr, target.fd, nullptr, std::size_t{1} << 30, 0);
      if (n == 0) return {};
      if (n > 0) continue;
      if (errno != EXDEV && errno != EINVAL && errno != ENOSYS) return fail(where, "copy", errno);
      break;  // not between these filesystems: copy through a buffer
    }
    char buffer[65536];
    for (ssize_t n; (n = read(source.fd, buffer, sizeof buffer)) != 0;) {
      if (n < 0) return fail(where, "read", errno);
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = write(target.fd, buffer + done, static_cast<std::size_t>(n - done));
        if (w < 0) return fail(where, "write", errno);
        done += w;
      }
    }
    return {};
  }

  static tl::unexpected<Error> fail(const std::string& where, const char* what, int err) {
    return tl::unexpected(Error{"snapshot: " + std::string(what) + " " + where +
                                (err ? std::string(": ") + std::strerror(err) : std::string())});
  }
};

// Copies the tree at `path` inside the sandbox (absolute) into the new directory `to`.
Result<void> copy_from_sandbox(int root_fd, const char* path, const std::string& to) {
  Fd from(openat(root_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (from.fd < 0)
    return tl::unexpected(
        Error{std::string("snapshot: opening ") + path + ": " + std::strerror(errno)});
  struct stat st {};
  if (fstat(from.fd, &st) != 0)
    return tl::unexpected(
        Error{std::string("snapshot: stat ") + path + ": " + std::strerror(errno)});
  if (mkdir(to.c_str(), 0700) != 0)
    return tl::unexpected(Error{"snapshot: creating " + to + ": " + std::strerror(errno)});
  Fd target(open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (target.fd < 0)
    return tl::unexpected(Error{"snapshot: opening " + to + ": " + std::strerror(errno)});
  if (auto copied = TreeCopy().directory(from.fd, target.fd, st.st_dev, path, 0); !copied)
    return copied;
  // The top takes the owner and mode of what it copies, as the sandbox sees it.
  if (fchown(target.fd, st.st_uid, st.st_gid) != 0 || fchmod(target.fd, st.st_mode & 01777) != 0)
    return tl::unexpected(Error{"snapshot: owner of " + to + ": " + std::strerror(errno)});
  return {};
}

}  // namespace

Result<void> Session::snapshot(const std::string& dir) {
  State& s = *state_;
  if (s.dead) return tl::unexpected(Error{"the session has ended"});
  if (mkdir(dir.c_str(), 0711) != 0)  // searchable by the sandbox's ids, which read it as a layer
    return tl::unexpected(Error{"snapshot: creating " + dir + ": " + std::strerror(errno)});
  auto copied = copy_from_sandbox(s.root_fd, ".", dir + "/root");
  if (copied && s.workdir != "/workspace") return {};  // no workspace in this sandbox
  if (copied) copied = copy_from_sandbox(s.root_fd, "workspace", dir + "/workspace");
  if (!copied) {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // nothing half-made is left behind
  }
  return copied;
}

}  // namespace warren::sandbox
