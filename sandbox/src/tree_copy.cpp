#include "tree_copy.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "fd.hpp"
#include "user.hpp"

namespace warren::sandbox::detail {

namespace {

constexpr int kMaxDepth = 256;

class TreeCopy {
 public:
  TreeCopy(const TreeCopyOptions& options, TreeCopyBudget& budget, int top)
      : options_(options), budget_(budget), top_(top) {}

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
    rewinddir(listing.get());  // the offset is shared with `from`, which may have been read before
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
    if (++budget_.entries > options_.max_entries && options_.max_entries)
      return over_limit(std::to_string(options_.max_entries) + " files and directories");
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(to, name.c_str(), 0700) != 0 && errno != EEXIST)
        return fail(where, "mkdir", errno);
      // Another device: a mount point, kept as an empty directory when asked.
      if (!options_.same_device_only || st.st_dev == device) {
        Fd source(openat(from, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        Fd target(openat(to, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (source.fd < 0 || target.fd < 0) return fail(where, "open", errno);
        if (auto r = directory(source.fd, target.fd, device, where, depth + 1); !r) return r;
      }
    } else if (const auto copied = S_ISREG(st.st_mode) && st.st_nlink > 1
                                       ? budget_.links.find({st.st_dev, st.st_ino})
                                       : budget_.links.end();
               copied != budget_.links.end()) {
      // Another name of a file copied already: a link to that copy, which has its owner, mode
      // and times.
      if (linkat(top_, copied->second.c_str(), to, name.c_str(), 0) != 0)
        return fail(where, "link", errno);
      return {};
    } else if (S_ISREG(st.st_mode)) {
      Fd source(open_regular_at(from, name.c_str(), O_RDONLY));
      if (source.fd < 0 && (errno == EINVAL || errno == ENOENT)) return {};  // replaced, gone
      if (source.fd < 0) return fail(where, "open", errno);
      if (auto r = file(source.fd, to, name, where, st); !r) return r;
      if (st.st_nlink > 1) budget_.links[{st.st_dev, st.st_ino}] = where.substr(1);
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
    return attributes(to, name, st, where);
  }

 public:
  // Owners (shifted when asked), then modes (chown clears set-id bits, and they are dropped
  // anyway: the copy lies on the host, where they would mean something else), then times:
  // builds compare them.
  Result<void> attributes(int to, const std::string& name, const struct stat& st,
                          const std::string& where) {
    const uid_t uid = options_.owner ? options_.owner->first : shift(st.st_uid);
    const gid_t gid = options_.owner ? options_.owner->second : shift(st.st_gid);
    // Rootless, a copy is the caller's, unless asked otherwise: the caller's id is the only one a
    // rootless sandbox has, and the only owner an ordinary user may give (a mount point's root, as
    // /proc's, is host root's).
    const bool keep_owner = options_.owner || geteuid() == 0;
    if (keep_owner && fchownat(to, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail(where, "chown", errno);
    if (!S_ISLNK(st.st_mode) && fchmodat(to, name.c_str(), st.st_mode & 01777, 0) != 0)
      return fail(where, "chmod", errno);
    const timespec times[2] = {st.st_atim, st.st_mtim};
    utimensat(to, name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return {};
  }

  // A regular file, its data extents only: holes stay holes (SEEK_DATA and SEEK_HOLE find them;
  // a file of a filesystem without them is one extent).
  Result<void> file(int source, int to, const std::string& name, const std::string& where,
                    const struct stat& st) {
    Fd target(openat(to, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (target.fd < 0) return fail(where, "create", errno);
    const off_t size = st.st_size;
    for (off_t data = 0; data < size;) {
      data = lseek(source, data, SEEK_DATA);
      if (data < 0) break;  // ENXIO: only a hole is left
      off_t hole = lseek(source, data, SEEK_HOLE);
      if (hole < 0 || hole > size) hole = size;
      if (auto r = extent(source, target.fd, data, hole - data, where); !r) return r;
      data = hole;
    }
    if (ftruncate(target.fd, size) != 0) return fail(where, "truncate", errno);  // a last hole
    return {};
  }

 private:
  // `length` bytes at `offset`, to the same offset in the target.
  Result<void> extent(int source, int target, off_t offset, off_t length,
                      const std::string& where) {
    if ((budget_.bytes += static_cast<std::uint64_t>(length)) > options_.max_bytes &&
        options_.max_bytes)
      return over_limit(std::to_string(options_.max_bytes) + " bytes");
    off_t in = offset, out = offset;
    const off_t end = offset + length;
    bool kernel_copy = true;
    char buffer[65536];
    while (in < end) {
      const std::size_t want = static_cast<std::size_t>(end - in);
      ssize_t n = -1;
      if (kernel_copy) {
        n = copy_file_range(source, &in, target, &out, want, 0);
        if (n < 0 &&
            (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
          kernel_copy = false;  // not between these filesystems: through a buffer
          continue;
        }
        if (n < 0) return fail(where, "copy", errno);
      } else {
        n = pread(source, buffer, std::min(want, sizeof buffer), in);
        if (n < 0) return fail(where, "read", errno);
        for (ssize_t done = 0; done < n;) {
          const ssize_t w =
              pwrite(target, buffer + done, static_cast<std::size_t>(n - done), out + done);
          if (w < 0) return fail(where, "write", errno);
          done += w;
        }
        in += n;
        out += n;
      }
      if (n == 0) break;  // the file shrank meanwhile
    }
    return {};
  }

  tl::unexpected<Error> over_limit(const std::string& limit) const {
    return tl::unexpected(Error{options_.purpose + ": more than " + limit +
                                ", the limit of one copy; nothing was kept"});
  }

  unsigned shift(unsigned id) const {
    if (options_.id_shift == 0) return id;
    return options_.id_shift + (id < kIdCount ? id : kIdCount - 2);  // 65534: nobody
  }

  tl::unexpected<Error> fail(const std::string& where, const char* what, int err) const {
    return tl::unexpected(Error{options_.purpose + ": " + what + " " + where +
                                (err ? std::string(": ") + std::strerror(err) : std::string())});
  }

  const TreeCopyOptions& options_;
  TreeCopyBudget& budget_;
  int top_;  // `to` of the whole copy: hard links are made relative to it
};

}  // namespace

Result<void> copy_tree(int from, int to, const TreeCopyOptions& options, TreeCopyBudget& budget) {
  struct stat st {};
  if (fstat(from, &st) != 0)
    return tl::unexpected(Error{options.purpose + ": stat: " + std::strerror(errno)});
  budget.links.clear();  // links are made within one top
  return TreeCopy(options, budget, to).directory(from, to, st.st_dev, "", 0);
}

Result<void> copy_file(int source, int to, const std::string& name, const TreeCopyOptions& options,
                       TreeCopyBudget& budget) {
  struct stat st {};
  if (fstat(source, &st) != 0)
    return tl::unexpected(Error{options.purpose + ": stat " + name + ": " + std::strerror(errno)});
  Fd opened(reopen_regular(source, O_RDONLY));
  if (opened.fd < 0)
    return tl::unexpected(Error{options.purpose + ": " + name + ": " +
                                (errno == EINVAL ? "not a regular file" : std::strerror(errno))});
  TreeCopy copy(options, budget, to);
  if (auto r = copy.file(opened.fd, to, name, "/" + name, st); !r) return r;
  return copy.attributes(to, name, st, "/" + name);
}

namespace {

void clear_set_id_bits_in(int dir, dev_t device, int depth) {
  if (depth > kMaxDepth) return;
  const int listing_fd = dup(dir);
  if (listing_fd < 0) return;
  std::unique_ptr<DIR, int (*)(DIR*)> listing(fdopendir(listing_fd), closedir);
  if (!listing) {
    close(listing_fd);
    return;
  }
  while (dirent* entry = readdir(listing.get())) {
    if (entry->d_type != DT_DIR && entry->d_type != DT_REG && entry->d_type != DT_UNKNOWN) continue;
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    Fd located(openat(dir, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (located.fd < 0 || fstat(located.fd, &st) != 0 || st.st_dev != device) continue;
    if (S_ISDIR(st.st_mode)) {
      Fd below(openat(located.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (below.fd >= 0) clear_set_id_bits_in(below.fd, device, depth + 1);
    } else if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID))) {
      // chmod through the descriptor: the inode looked at, whatever its name is now.
      const std::string self = "/proc/self/fd/" + std::to_string(located.fd);
      chmod(self.c_str(), st.st_mode & 01777);
    }
  }
}

}  // namespace

void clear_set_id_bits(const std::string& dir) {
  Fd top(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  struct stat st {};
  if (top.fd >= 0 && fstat(top.fd, &st) == 0) clear_set_id_bits_in(top.fd, st.st_dev, 0);
}

int reopen_regular(int path_fd, int flags) {
  struct stat st {};
  if (fstat(path_fd, &st) != 0) return -1;
  if (!S_ISREG(st.st_mode)) {
    errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    return -1;
  }
  // The descriptor names the inode that was looked at, whatever happens to its path meanwhile.
  const std::string self = "/proc/self/fd/" + std::to_string(path_fd);
  return open(self.c_str(), flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
}

int open_regular_at(int dir, const char* name, int flags) {
  Fd located(openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (located.fd < 0) return -1;
  return reopen_regular(located.fd, flags);
}

}  // namespace warren::sandbox::detail
