// Kernel control files (cgroup, /proc/<pid>/uid_map, sysctls): small, read and written whole with
// one system call, where one write is one command to the kernel.
#pragma once

#include <string>
#include <string_view>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

// An Error names the file, the value and the reason.
Result<void> write_control(const std::string& path, std::string_view value);
// Empty when the file cannot be read.
std::string read_control(const std::string& path);

// A control file read or written often (a cgroup's statistics, its tasks file), opened once and
// then used at offset 0: the kernel regenerates its contents on every read from the start.
class ControlFile {
 public:
  ControlFile() = default;
  void name(std::string path, bool writable) {
    path_ = std::move(path);
    writable_ = writable;
  }
  ~ControlFile();
  ControlFile(const ControlFile&) = delete;
  ControlFile& operator=(const ControlFile&) = delete;

  Result<void> write(std::string_view value);
  std::string read();  // the whole file; empty when it cannot be read
  int fd();            // opened on first use; -1 when it cannot be

 private:
  std::string path_;
  bool writable_ = false;
  int fd_ = -1;
};

}  // namespace warren::sandbox::detail
