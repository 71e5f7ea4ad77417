#include "user.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace warren::sandbox::detail {

namespace {

Result<void> write_file(const std::string& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error{"opening " + path + ": " + std::strerror(errno)});
  const ssize_t n = write(fd, text.data(), text.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    return tl::unexpected(Error{"writing " + path + ": " + std::strerror(err)});
  return {};
}

}  // namespace

Result<void> write_id_maps(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  if (geteuid() == 0) {
    const std::string map = "0 " + std::to_string(kHostIdBase) + " " + std::to_string(kIdCount);
    if (auto r = write_file(proc + "/uid_map", map); !r) return r;
    return write_file(proc + "/gid_map", map);
  }
  // Rootless: one line each, and setgroups must be denied before gid_map may be written.
  if (auto r = write_file(proc + "/uid_map", "0 " + std::to_string(geteuid()) + " 1"); !r) return r;
  if (auto r = write_file(proc + "/setgroups", "deny"); !r) return r;
  return write_file(proc + "/gid_map", "0 " + std::to_string(getegid()) + " 1");
}

}  // namespace warren::sandbox::detail
