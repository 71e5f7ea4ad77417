// What the sandbox tests look at on the host, and the rule that they need root.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace warren::sandbox::testing {

// For SetUp: namespaces and cgroups need root (CI runs as root); elsewhere the test skips.
#define WARREN_REQUIRE_ROOT()                                                        \
  do {                                                                               \
    if (geteuid() != 0)                                                              \
      GTEST_SKIP() << "sandbox tests need root: they create namespaces and cgroups"; \
  } while (0)

// Processes on the host whose command line contains `marker`.
inline int host_processes_with(const std::string& marker) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    const std::string cmdline((std::istreambuf_iterator<char>(in)), {});
    if (cmdline.find(marker) != std::string::npos) ++count;
  }
  return count;
}

// A `sleep` argument no other process on the host has: 100.<pid><n>.
inline std::string unique_sleep(int n) {
  return "100." + std::to_string(getpid()) + std::to_string(n);
}

}  // namespace warren::sandbox::testing
