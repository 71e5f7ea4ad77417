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

}  // namespace warren::sandbox::detail
