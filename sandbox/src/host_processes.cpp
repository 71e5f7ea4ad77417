#include <filesystem>
#include <fstream>
#include <iterator>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

std::vector<pid_t> processes_on_host(const std::string& marker) {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline;
    try {
      std::ifstream in(entry.path() / "cmdline");
      cmdline.assign(std::istreambuf_iterator<char>(in), {});
    } catch (const std::ios_base::failure&) {
      continue;  // it exited while being read: the read fails (ESRCH) and libstdc++ throws
    }
    if (cmdline.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

}  // namespace warren::sandbox
