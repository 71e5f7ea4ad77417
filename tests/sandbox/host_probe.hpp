// What the sandbox tests look at on the host, and the rule that they need root.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::testing {

// For SetUp: namespaces and cgroups need root (CI runs as root); elsewhere the test skips.
#define WARREN_REQUIRE_ROOT()                                                        \
  do {                                                                               \
    if (geteuid() != 0)                                                              \
      GTEST_SKIP() << "sandbox tests need root: they create namespaces and cgroups"; \
  } while (0)

// The host's first IPv4 address that is not a loopback one (what a sandbox with an outbound
// network reaches the host at), or "".
inline std::string host_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* a = list; a && found.empty(); a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    const in_addr ip = reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr;
    if ((ntohl(ip.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    found = inet_ntop(AF_INET, &ip, text, sizeof text);
  }
  freeifaddrs(list);
  return found;
}

// A listening TCP socket on `address` (network order), any port: its descriptor and port.
inline std::pair<int, int> listen_on(in_addr_t address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = address;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(listen(fd, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return {fd, ntohs(addr.sin_port)};
}

// Whether a tun device can be opened, which slirp4netns (Network::Outbound) needs: the cgroup v2
// VMs' kernels load no modules, and have none.
inline bool tun_usable() {
  const int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// The whole of a host file.
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// What `command` printed in the session, stdout then stderr; an error throws.
inline std::string sh(Session& s, const std::string& command) {
  auto r = s.exec(command);
  if (!r) throw std::runtime_error(r.error().message);
  return r->stdout_data + r->stderr_data;
}

// Processes on the host whose command line contains `marker`.
inline int host_processes_with(const std::string& marker) {
  return static_cast<int>(processes_on_host(marker).size());
}

// A v2 host, with the unified hierarchy at /sys/fs/cgroup (as in scripts/cgroup2-vm.sh's VMs).
inline bool unified_host() {
  return std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers");
}

// Whether the running kernel is Linux major.minor or later.
inline bool kernel_at_least(int want_major, int want_minor) {
  utsname host{};
  uname(&host);
  int major = 0, minor = 0;
  std::sscanf(host.release, "%d.%d", &major, &minor);
  return major > want_major || (major == want_major && minor >= want_minor);
}

// Whether a pool keeps its cgroups: always on v1; on v2 only where memory.peak can be reset
// (Linux 6.12 and later), since a reused group must not report an earlier sandbox's peak. The
// same holds a recycled sandbox, which keeps its group.
inline bool cgroups_are_reused() {
  return !unified_host() || kernel_at_least(6, 12);
}

// A `sleep` argument no other process on the host has: 100.<pid><n>.
inline std::string unique_sleep(int n) {
  return "100." + std::to_string(getpid()) + std::to_string(n);
}

// A fixture for one-shot sandboxes: root required, a 20 s timeout, and `sh -c` through a Runtime
// that keeps `keep` cgroups and network namespaces for reuse, and `recycle` recycled sandboxes.
class SandboxFixture : public ::testing::Test {
 protected:
  explicit SandboxFixture(std::size_t keep = 256, std::size_t recycle = 64)
      : runtime(Runtime::Options{.keep = keep, .recycle = recycle}) {}
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    policy.limits.timeout = std::chrono::seconds(20);
  }
  ExecResult run_sh(const std::string& script) {
    auto r = runtime.run(policy, Command{{"/bin/sh", "-c", script}, std::nullopt});
    if (!r) throw std::runtime_error("sandbox failed: " + r.error().message);
    return *r;
  }

  Runtime runtime;
  Policy policy;
};

}  // namespace warren::sandbox::testing
