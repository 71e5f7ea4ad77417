// A Runtime reuses cgroups and network namespaces between sandboxes. These tests check that
// nothing of one sandbox reaches the next through them: limits, statistics, sockets. They need
// root (CI runs as root); elsewhere they skip and say why.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

using testing::cgroups_are_reused;
using testing::host_processes_with;
using testing::unified_host;
using testing::unique_sleep;

class Reuse : public testing::SandboxFixture {
 protected:
  // One of each kind, and no recycled sandbox (which would keep its group): every start reuses
  // the pooled cgroup and network namespace.
  Reuse() : SandboxFixture(1, 0) {}
};

// Children of `parent` on the host.
int children_of(pid_t parent) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string pid, comm, state;
    pid_t ppid = 0;
    if (stat >> pid >> comm >> state >> ppid && ppid == parent) ++count;
  }
  return count;
}

TEST_F(Reuse, BothStartPathsRunTheSameSandbox) {
  // Through the spawner (the default when warren-spawner is found), whose sandboxes bind the
  // system and /dev from its templates, and from this process, which builds them mount by mount.
  Runtime in_process{Runtime::Options{.keep = 1, .spawner = false}};
  const std::string probe =
      "echo $$ $(hostname); id -u; grep SigIgn /proc/self/status; ls /dev | tr '\\n' ' '; "
      "echo; wc -c < /etc/shadow; touch /usr/x /dev/x 2>&1 | grep -c Read-only; "
      "echo shared > /dev/shm/f && cat /dev/shm/f; echo hi > /dev/null && echo null";
  for (Runtime* rt : {&runtime, &in_process}) {
    const ExecResult r = *rt->run(policy, Command{{"/bin/sh", "-c", probe}, std::nullopt});
    EXPECT_EQ(r.stdout_data,
              "2 sandbox\n0\nSigIgn:\t0000000000000000\nfd full null ptmx pts random shm stderr "
              "stdin stdout tty urandom zero \n0\n2\nshared\nnull\n")
        << r.stderr_data;
  }
}

// The cgroups on the host named for supervisor `pid` (warren/<pid namespace>-<pid>-...).
int cgroups_of(pid_t pid) {
  struct stat ns {};
  stat("/proc/self/ns/pid", &ns);
  const std::string prefix = std::to_string(ns.st_ino) + "-" + std::to_string(pid) + "-";
  const char* parent = unified_host() ? "/sys/fs/cgroup/warren" : "/sys/fs/cgroup/pids/warren";
  int count = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent, ec))
    count += entry.path().filename().string().starts_with(prefix);
  return count;
}

TEST_F(Reuse, NothingOutlivesACrashedSupervisor) {
  // A supervisor killed with SIGKILL cannot clean up: its spawner sees the socket close and
  // exits, and PID 1 of every sandbox dies with the spawner. Its cgroups are left behind until
  // the next pool's sweep deletes them. This process makes no group before the crash, so the
  // first sweep is also this process's first use of cgroups.
  const std::string marker = unique_sleep(77);
  const pid_t supervisor = fork();
  ASSERT_GE(supervisor, 0);
  if (supervisor == 0) {
    Runtime rt;
    (void)rt.run(policy, Command{{"sleep", marker}, std::nullopt});
    _exit(0);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (host_processes_with(marker) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(host_processes_with(marker), 1) << "the sandboxed sleep did not start";
  EXPECT_EQ(children_of(supervisor), 1) << "expected the supervisor's spawner";
  kill(supervisor, SIGKILL);
  // Until it is reaped its pid exists, so no sweep (another test's, running beside this one) takes
  // its group yet.
  EXPECT_EQ(cgroups_of(supervisor), 1) << "the crashed supervisor's cgroup is not where expected";
  waitpid(supervisor, nullptr, 0);
  while (host_processes_with(marker) > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(host_processes_with(marker), 0) << "a sandbox outlived its supervisor";

  // A live pool's group: a session's, which it holds whether or not this host reuses groups.
  auto session = Session::start(runtime, policy);
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_EQ(cgroups_of(supervisor), 0) << "the next pool did not sweep the crashed one's cgroup";

  Runtime next;  // its sweep runs beside the session; taking the session's group kills its shell
  EXPECT_EQ(next.run(policy, Command{{"true"}, std::nullopt})->exit_code, 0);
  // The session's group, and the next pool's where groups are kept for reuse.
  EXPECT_EQ(cgroups_of(getpid()), cgroups_are_reused() ? 2 : 1)
      << "the sweep took a live pool's cgroup";
  const auto still = (*session)->exec("echo alive");
  ASSERT_TRUE(still) << still.error().message;
  EXPECT_EQ(still->stdout_data, "alive\n");
}

TEST_F(Reuse, StatisticsStartAfreshInAReusedCgroup) {
  policy.limits.memory_bytes = 64 << 20;
  const ExecResult bomb = run_sh("python3 -c 'b = bytearray(300 << 20)'");
  ASSERT_TRUE(bomb.oom_killed);
  EXPECT_GE(bomb.peak_memory_bytes, 32u << 20);
  EXPECT_EQ(cgroups_of(getpid()), cgroups_are_reused() ? 1 : 0) << "pooled cgroups: 1 when reused";

  const ExecResult quiet = run_sh("true");
  EXPECT_EQ(quiet.exit_code, 0);
  EXPECT_FALSE(quiet.oom_killed) << "the OOM kill of the previous sandbox was reported again";
  EXPECT_LT(quiet.peak_memory_bytes, 32u << 20) << "the previous sandbox's peak was reported";

  const ExecResult busy = run_sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done");
  const ExecResult idle = run_sh("true");
  EXPECT_GT(busy.cpu_time.count(), 50000);
  EXPECT_LT(idle.cpu_time.count(), busy.cpu_time.count() / 4) << "CPU time carried over";
}

TEST_F(Reuse, LimitsFollowEachPolicy) {
  policy.limits.pids = 16;
  const ExecResult tight = run_sh("for i in $(seq 40); do sleep 5 & done 2>&1; echo done");
  EXPECT_NE(tight.stdout_data.find("fork"), std::string::npos) << tight.stdout_data;

  policy.limits.pids = 512;
  const ExecResult loose = run_sh("for i in $(seq 40); do sleep 0.2 & done 2>&1; wait; echo done");
  EXPECT_EQ(loose.stdout_data, "done\n") << "the previous pids limit stayed";

  policy.limits.memory_bytes = 32 << 20;
  EXPECT_TRUE(run_sh("python3 -c 'b = bytearray(100 << 20)'").oom_killed);
  policy.limits.memory_bytes = 512 << 20;
  const ExecResult roomy = run_sh("python3 -c 'b = bytearray(100 << 20); print(len(b))'");
  EXPECT_FALSE(roomy.oom_killed) << "the previous memory limit stayed";
  EXPECT_EQ(roomy.stdout_data, "104857600\n");
}

TEST_F(Reuse, NoSocketOutlivesItsSandbox) {
  // The first sandbox leaves a listener running in the background when its command ends; the
  // next one, in the same network namespace, must find the port free and nothing listening.
  const std::string listen =
      "python3 -c 'import socket,time; s=socket.socket(); s.bind((\"127.0.0.1\", 8765)); "
      "s.listen(); time.sleep(60)' & sleep 0.5; echo started";
  ASSERT_EQ(run_sh(listen).stdout_data, "started\n");
  const ExecResult next = run_sh(
      "bash -c 'echo > /dev/tcp/127.0.0.1/8765' 2>/dev/null && echo reached || echo refused; "
      "grep -c ' 0A ' /proc/net/tcp || true");
  EXPECT_EQ(next.stdout_data, "refused\n0\n");
}

TEST_F(Reuse, PrivilegedPortsAndLoopbackWithoutNetworkCapabilities) {
  // The pooled namespace belongs to the host: the sandbox cannot reconfigure it, yet its root can
  // still serve on port 80 over loopback.
  const ExecResult r = run_sh(R"(python3 -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 80)); s.listen(1)
c = socket.create_connection(("127.0.0.1", 80)); a, _ = s.accept(); c.sendall(b"ok")
print(a.recv(2).decode())'
ip link set lo down; echo "ip: $?")");
  // ip (iproute2, installed by scripts/setup.sh) ran and the kernel refused it: not found would
  // be status 127 and no RTNETLINK line.
  EXPECT_EQ(r.stdout_data, "ok\nip: 2\n") << r.stderr_data;
  EXPECT_NE(r.stderr_data.find("RTNETLINK answers: Operation not permitted"), std::string::npos)
      << r.stderr_data;
}

TEST_F(Reuse, CgroupNamespaceIsRootedAtTheSandbox) {
  // Every hierarchy's line ends at the namespace's root, "/": on v1 (hybrid too) one line a
  // hierarchy, the memory and pids ones among them; on v2 alone the one line "0::/".
  const ExecResult r = run_sh("cat /proc/self/cgroup");
  std::istringstream lines(r.stdout_data);
  std::string line;
  int v1_limits = 0, v2 = 0;
  while (std::getline(lines, line)) {
    EXPECT_TRUE(line.ends_with(":/")) << "the sandbox sees a host cgroup path: " << line;
    v1_limits +=
        line.find(":memory:") != std::string::npos || line.find(":pids:") != std::string::npos;
    v2 += line.starts_with("0::");
  }
  EXPECT_EQ(v1_limits, unified_host() ? 0 : 2) << r.stdout_data;
  EXPECT_EQ(v2, 1) << r.stdout_data;
}

}  // namespace
}  // namespace warren::sandbox
