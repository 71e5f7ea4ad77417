#include "user.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
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
