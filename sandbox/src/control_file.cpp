#include "control_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace warren::sandbox::detail {

Result<void> write_control(const std::string& path, std::string_view value) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error{"opening " + path + ": " + std::strerror(errno)});
  const ssize_t n = write(fd, value.data(), value.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size()))
    return tl::unexpected(
        Error{"writing '" + std::string(value) + "' to " + path + ": " + std::strerror(err)});
  return {};
}

std::string read_control(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  char buffer[4096];
  const ssize_t n = read(fd, buffer, sizeof buffer);
  close(fd);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

ControlFile::~ControlFile() {
  if (fd_ >= 0) close(fd_);
}

int ControlFile::fd() {
  if (fd_ < 0) fd_ = open(path_.c_str(), (writable_ ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  return fd_;
}

Result<void> ControlFile::write(std::string_view value) {
  if (fd() < 0) return tl::unexpected(Error{"opening " + path_ + ": " + std::strerror(errno)});
  if (pwrite(fd_, value.data(), value.size(), 0) != static_cast<ssize_t>(value.size()))
    return tl::unexpected(
        Error{"writing '" + std::string(value) + "' to " + path_ + ": " + std::strerror(errno)});
  return {};
}

std::string ControlFile::read() {
  if (fd() < 0) return {};
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = pread(fd_, buffer, sizeof buffer, static_cast<off_t>(text.size()))) > 0;)
    text.append(buffer, static_cast<std::size_t>(n));
  return text;
}

}  // namespace warren::sandbox::detail
