#include "user.hpp"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "control_file.hpp"

namespace warren::sandbox::detail {

unsigned range_starting_at(unsigned uid) {
  if (uid < kHostIdBase || (uid - kHostIdBase) % kIdCount != 0) return 0;
  return (uid - kHostIdBase) / kIdCount < kIdRanges ? uid : 0;
}

Result<void> write_id_maps(pid_t pid, unsigned host_ids) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (geteuid() == 0) {
    if (!range_starting_at(host_ids))
      return tl::unexpected(Error{"host ids " + std::to_string(host_ids) + " begin no id range"});
    const std::string map = "0 " + std::to_string(host_ids) + " " + std::to_string(kIdCount);
    if (auto r = write_control(proc + "/uid_map", map); !r) return r;
    return write_control(proc + "/gid_map", map);
  }
  // Rootless: one line each, and setgroups must be denied before gid_map may be written.
  if (auto r = write_control(proc + "/uid_map", "0 " + std::to_string(geteuid()) + " 1"); !r)
    return r;
  if (auto r = write_control(proc + "/setgroups", "deny"); !r) return r;
  return write_control(proc + "/gid_map", "0 " + std::to_string(getegid()) + " 1");
}

namespace {
tl::unexpected<Error> shift_error(const std::string& message) {
  return tl::unexpected(Error{message});
}
}  // namespace

// A user namespace whose ids 0..65535 are the host's `shift`.., held by its descriptor: what an
// idmapped mount takes. A child makes it and waits while the maps are written; it then exits.
Result<Fd> id_shifting_namespace(unsigned shift) {
  int go[2];
  if (pipe2(go, O_CLOEXEC) != 0) return shift_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t child = fork();
  if (child == 0) {  // async-signal-safe calls only: the parent may have threads
    char byte;
    if (unshare(CLONE_NEWUSER) != 0) _exit(1);
    close(go[1]);
    while (read(go[0], &byte, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(go[0]);
  if (child < 0) {
    close(go[1]);
    return shift_error(std::string("fork: ") + std::strerror(errno));
  }
  // The child has unshared once its own user namespace differs from ours.
  const std::string proc = "/proc/" + std::to_string(child);
  struct stat ours {
  }, theirs{};
  stat("/proc/self/ns/user", &ours);
  for (int i = 0; i < 10000; ++i) {
    if (stat((proc + "/ns/user").c_str(), &theirs) == 0 && theirs.st_ino != ours.st_ino) break;
    usleep(50);
  }
  Result<void> mapped = theirs.st_ino != ours.st_ino
                            ? detail::write_id_maps(child, shift)
                            : tl::unexpected(Error{"the child made no user namespace"});
  Fd ns(mapped ? open((proc + "/ns/user").c_str(), O_RDONLY | O_CLOEXEC) : -1);
  close(go[1]);  // the child exits; the namespace lives on in `ns`
  waitpid(child, nullptr, 0);
  if (!mapped) return shift_error("an id-shifting namespace: " + mapped.error().message);
  if (ns.fd < 0) return shift_error(std::string("ns/user: ") + std::strerror(errno));
  return ns;
}

Result<void> shift_tree(int tree, int userns, const std::string& what) {
  mount_attr attributes{};
  attributes.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
  if (userns >= 0) {
    attributes.attr_set |= MOUNT_ATTR_IDMAP;
    attributes.userns_fd = static_cast<std::uint64_t>(userns);
  }
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attributes,
              sizeof attributes) == 0)
    return {};
  if (userns < 0) return shift_error("making " + what + " read-only: " + std::strerror(errno));
  return shift_error("the filesystem of " + what + " has no idmapped mounts (" +
                     std::strerror(errno) + ")");
}

Result<int> IdShifts::namespace_for(unsigned shift) {
  std::lock_guard lock(mutex_);
  if (auto found = namespaces_.find(shift); found != namespaces_.end()) return found->second.fd;
  auto made = id_shifting_namespace(shift);
  if (!made) return tl::unexpected(made.error());
  return namespaces_.emplace(shift, std::move(*made)).first->second.fd;
}

}  // namespace warren::sandbox::detail

namespace warren::sandbox {

// A range is held by an exclusive flock on /run/warren/ids/<k>: the kernel drops it when the
// holder closes the file or dies, so a range is never left taken by a killed process. flock locks
// belong to open files, so two takes in one process exclude each other too.
namespace {

// The lock of range k: its descriptor, -1 when another holder has it, or an error.
Result<int> lock_range(unsigned k) {
  const char* dir = "/run/warren/ids";
  ::mkdir("/run/warren", 0755);
  ::mkdir(dir, 0700);
  const std::string file = std::string(dir) + "/" + std::to_string(k);
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return tl::unexpected(Error{"cannot take an id range: " + file + ": " + std::strerror(errno)});
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return fd;
  close(fd);
  return -1;
}

}  // namespace

Result<IdRange> IdRange::take() {
  using detail::kHostIdBase, detail::kIdCount, detail::kIdRanges;
  if (geteuid() != 0) return IdRange(-1, 0);  // rootless: the caller's own id, nothing to share
  // Processes start their search at different ranges, so that takes seldom contend.
  static std::atomic<unsigned> next{static_cast<unsigned>(getpid()) * 7919u};
  const unsigned start = next.fetch_add(1);
  for (unsigned i = 0; i < kIdRanges - 1; ++i) {
    const unsigned k = 1 + (start + i) % (kIdRanges - 1);
    auto fd = lock_range(k);
    if (!fd) return tl::unexpected(fd.error());
    if (*fd >= 0) return IdRange(*fd, kHostIdBase + k * kIdCount);
  }
  return tl::unexpected(Error{"every host id range is taken (" + std::to_string(kIdRanges - 1) +
                              " sandboxes or workspaces at once)"});
}

Result<IdRange> IdRange::take(unsigned base) {
  using detail::kHostIdBase, detail::kIdCount;
  if (geteuid() != 0) return IdRange(-1, 0);
  if (!detail::range_starting_at(base))
    return tl::unexpected(Error{"host ids " + std::to_string(base) + " begin no id range"});
  if (base == kHostIdBase) return IdRange(-1, base);  // range 0 is shared: there is no lock
  auto fd = lock_range((base - kHostIdBase) / kIdCount);
  if (!fd) return tl::unexpected(fd.error());
  if (*fd < 0)
    return tl::unexpected(Error{"host ids " + std::to_string(base) +
                                " are in use by another sandbox or run (is it still running?)"});
  return IdRange(*fd, base);
}

IdRange::IdRange(IdRange&& other) noexcept : lock_(other.lock_), base_(other.base_) {
  other.lock_ = -1;
}

IdRange::~IdRange() {
  if (lock_ >= 0) close(lock_);
}

}  // namespace warren::sandbox
