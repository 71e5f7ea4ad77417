// Host paths in a sandbox: --mount sources land where asked, nosuid and nodev, read-only when
// asked; and the namespace each PID 1 starts from holds none of the host's mounts, so that host
// paths reach it only as the trees the supervisor opens.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace fs = std::filesystem;

using HostPaths = testing::SandboxFixture;

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The mount options (the sixth field of mountinfo) of the mount at `target` in `mountinfo`.
std::string options_at(const std::string& mountinfo, const std::string& target) {
  std::istringstream lines(mountinfo);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point, options;
    fields >> id >> parent >> device >> root >> point >> options;
    if (point == target) return options;
  }
  return "(not mounted)";
}

TEST_F(HostPaths, MountsLandWhereAskedNosuidNodevAndReadOnlyWhenAsked) {
  const fs::path dir = fs::temp_directory_path() / ("warren_hostpaths_" + std::to_string(getpid()));
  fs::create_directories(dir / "shared");
  fs::permissions(dir / "shared", fs::perms::all);
  std::ofstream(dir / "config") << "setting=1\n";
  // Neither /mnt nor /tmp/a exists in the sandbox: their directories are made, and /tmp keeps the
  // sticky, world-writable mode it had.
  policy.mounts = {{(dir / "config").string(), "/mnt/deep/config", true},
                   {(dir / "shared").string(), "/tmp/a/shared", false}};
  // The same through the spawner (host paths as trees) and from this process (by name).
  Runtime in_process{Runtime::Options{.keep = 1, .spawner = false}};
  for (Runtime* rt : {&runtime, &in_process}) {
    fs::remove(dir / "shared/out");
    const auto r = rt->run(
        policy, Command{{"/bin/sh", "-c",
                         "cat /mnt/deep/config; echo changed > /mnt/deep/config 2>/dev/null || "
                         "echo refused; echo written > /tmp/a/shared/out; stat -c %a /tmp; "
                         "cat /proc/self/mountinfo"},
                        std::nullopt});
    ASSERT_TRUE(r.has_value()) << r.error().message;
    ASSERT_EQ(r->exit_code, 0) << r->stderr_data;
    EXPECT_TRUE(r->stdout_data.starts_with("setting=1\nrefused\n1777\n")) << r->stdout_data;
    EXPECT_EQ(read_file(dir / "config"), "setting=1\n");
    EXPECT_EQ(read_file(dir / "shared/out"), "written\n");
    const std::string config = options_at(r->stdout_data, "/mnt/deep/config");
    const std::string shared = options_at(r->stdout_data, "/tmp/a/shared");
    EXPECT_TRUE(config.starts_with("ro,nosuid,nodev")) << config;
    EXPECT_TRUE(shared.starts_with("rw,nosuid,nodev")) << shared;
  }
  fs::remove_all(dir);
}

// Each PID 1 starts from a copy of its spawner's namespace; a host mount there would be copied and
// dropped again in every start, and nameable by PID 1. The spawner's namespace has its own root,
// a /proc, and the spawner's directories under /run/warren: nothing else.
TEST_F(HostPaths, PidOneStartsFromANamespaceWithoutHostMounts) {
  ASSERT_EQ(run_sh("true").exit_code, 0);  // the spawner is started with the first sandbox
  std::vector<pid_t> spawners;
  for (pid_t pid : processes_on_host("warren-spawner")) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string comm_and_state;
    pid_t self = 0, parent = 0;
    stat >> self >> comm_and_state >> comm_and_state >> parent;
    if (parent == getpid()) spawners.push_back(pid);
  }
  ASSERT_FALSE(spawners.empty()) << "no spawner of this process was found";
  for (pid_t spawner : spawners) {
    const std::string mountinfo = read_file("/proc/" + std::to_string(spawner) + "/mountinfo");
    std::istringstream lines(mountinfo);
    int mounts = 0;
    for (std::string line; std::getline(lines, line); ++mounts) {
      std::istringstream fields(line);
      std::string id, parent, device, root, point;
      fields >> id >> parent >> device >> root >> point;
      EXPECT_TRUE(point == "/" || point == "/proc" || point.starts_with("/run/warren/")) << line;
    }
    EXPECT_GT(mounts, 3) << mountinfo;  // the root, /proc and the templates at least
  }
}

}  // namespace
}  // namespace warren::sandbox
