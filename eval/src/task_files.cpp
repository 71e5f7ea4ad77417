#include "task_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace warren::eval::detail {

namespace {

// O_PATH opens nothing: it only names the inode, which is then looked at before it is read.
int locate(int dir, const std::string& relative) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, dir, relative.c_str(), &how, sizeof how));
}

}  // namespace

bool plainly_beneath(const std::string& relative) {
  if (relative.empty() || relative.starts_with('/')) return false;
  for (const auto& part : std::filesystem::path(relative))
    if (part == "..") return false;
  return true;
}

Result<TaskFolder> TaskFolder::open(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error{"cannot open " + dir + ": " + std::strerror(errno)});
  return TaskFolder(fd, dir);
}

TaskFolder::TaskFolder(TaskFolder&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

TaskFolder::~TaskFolder() {
  if (fd_ >= 0) close(fd_);
}

TaskEntry TaskFolder::entry(const std::string& relative) const {
  if (!plainly_beneath(relative)) return TaskEntry::Other;
  const int fd = locate(fd_, relative);
  if (fd < 0) return errno == ENOENT ? TaskEntry::Missing : TaskEntry::Other;
  struct stat st {};
  const bool known = fstat(fd, &st) == 0;
  close(fd);
  if (known && S_ISREG(st.st_mode)) return TaskEntry::File;
  if (known && S_ISDIR(st.st_mode)) return TaskEntry::Directory;
  return TaskEntry::Other;
}

Result<std::string> TaskFolder::read(const std::string& relative, const std::string& what,
                                     std::uint64_t max_bytes) const {
  auto refuse = [&](const std::string& why) {
    return tl::unexpected(Error{what + " " + relative + ": " + why});
  };
  if (!plainly_beneath(relative))
    return refuse("outside the task's folder (absolute paths and .. are refused)");
  const int located = locate(fd_, relative);
  if (located < 0)
    return refuse(errno == EXDEV ? "a link that leads out of the task's folder"
                                 : std::strerror(errno));
  struct stat st {};
  const bool regular = fstat(located, &st) == 0 && S_ISREG(st.st_mode);
  int fd = -1;
  if (regular) {  // again through the descriptor: the inode that was looked at
    const std::string self = "/proc/self/fd/" + std::to_string(located);
    fd = ::open(self.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  }
  close(located);
  if (!regular) return refuse("not a regular file");
  if (fd < 0) return refuse(std::strerror(errno));
  std::string data;
  char buffer[65536];
  ssize_t n = 0;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) {
    data.append(buffer, static_cast<std::size_t>(n));
    if (data.size() > max_bytes) break;
  }
  const int read_errno = errno;
  close(fd);
  if (n < 0) return refuse(std::strerror(read_errno));
  if (data.size() > max_bytes) return refuse("more than " + std::to_string(max_bytes) + " bytes");
  return data;
}

}  // namespace warren::eval::detail
