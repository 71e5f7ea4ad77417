// The escape and limits suite. Every case checks the effect on the host, not only an exit code.
// These tests create namespaces and cgroups and need root (CI runs as root); elsewhere they skip
// and say why.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

using testing::host_processes_with;
using testing::unique_sleep;

namespace fs = std::filesystem;

using Sandbox = testing::SandboxFixture;

std::string unique(const std::string& stem) {
  return stem + std::to_string(getpid()) + "_" +
         std::to_string(::testing::UnitTest::GetInstance()->random_seed());
}

TEST_F(Sandbox, ExitCodesAndSignals) {
  EXPECT_EQ(run_sh("true").exit_code, 0);
  EXPECT_EQ(run_sh("exit 3").exit_code, 3);
  const ExecResult killed = run_sh("kill -TERM $$");
  EXPECT_EQ(killed.signal, SIGTERM);
  EXPECT_EQ(killed.exit_code, -1);
  const ExecResult missing = *run(policy, Command{{"no-such-command-xyz"}, std::nullopt});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_EQ(missing.stderr_data,
            "warren: cannot execute no-such-command-xyz: No such file or directory\n");
}

TEST_F(Sandbox, HostSecretsAreNotVisible) {
  const std::string secret = "/root/" + unique("warren_secret_");
  std::ofstream(secret) << "top secret";
  const ExecResult r = run_sh("cat " + secret +
                              " 2>&1; ls -A /root /home; ls /work 2>&1;"
                              " cat /etc/shadow /etc/gshadow | wc -c");
  fs::remove(secret);
  ASSERT_TRUE(fs::exists("/etc/shadow"));
  EXPECT_EQ(r.stdout_data, "cat: " + secret +
                               ": No such file or directory\n/home:\n\n/root:\n"
                               "ls: cannot access '/work': No such file or directory\n0\n");
}

TEST_F(Sandbox, HostFilesystemIsUntouched) {
  const std::string inside = "/tmp/" + unique("warren_inside_");
  const ExecResult r = run_sh(
      "touch /usr/warren_probe 2>&1; echo x > /etc/warren_probe 2>&1;"
      " echo data > " +
      inside + " && cat " + inside);
  EXPECT_NE(r.stdout_data.find("Read-only file system"), std::string::npos) << r.stdout_data;
  EXPECT_TRUE(r.stdout_data.ends_with("data\n"));  // the writable layer works...
  EXPECT_FALSE(fs::exists("/usr/warren_probe"));
  EXPECT_FALSE(fs::exists("/etc/warren_probe"));
  EXPECT_FALSE(fs::exists(inside));  // ...and is not the host's /tmp
}

TEST_F(Sandbox, NoNetworkEgressToAHostListener) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  const std::string port = std::to_string(ntohs(addr.sin_port));
  const std::string probe = "bash -c 'echo hi > /dev/tcp/127.0.0.1/" + port + "' 2>&1; echo rc=$?";

  const ExecResult isolated = run_sh(probe);
  EXPECT_NE(isolated.stdout_data.find("Connection refused"), std::string::npos);
  EXPECT_LT(accept(listener, nullptr, nullptr), 0) << "the sandbox reached the host listener";

  policy.network = Network::Host;  // the same probe does connect when asked for
  const ExecResult shared = run_sh(probe);
  EXPECT_NE(shared.stdout_data.find("rc=0"), std::string::npos) << shared.stdout_data;
  const int conn = accept(listener, nullptr, nullptr);
  EXPECT_GE(conn, 0);
  if (conn >= 0) close(conn);
  close(listener);
}

TEST_F(Sandbox, LoopbackInsideWorks) {
  const ExecResult r = run(policy, Command{{"python3", "-c", R"(
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
c = socket.create_connection(s.getsockname()); a, _ = s.accept(); c.sendall(b"ping")
print(a.recv(4).decode()))"},
                                           std::nullopt})
                           .value();
  EXPECT_EQ(r.stdout_data, "ping\n") << r.stderr_data;
}

TEST_F(Sandbox, ForkBombIsContained) {
  policy.limits.pids = 32;
  policy.limits.timeout = std::chrono::seconds(5);
  const std::string marker = unique_sleep(1);
  const ExecResult r =
      // Each level waits for the next, so the script goes on only once the limit has stopped a
      // fork.
      run_sh("bomb() { sleep " + marker + " & (bomb); }; bomb; echo survived");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "survived\n");
  EXPECT_EQ(host_processes_with(marker), 0) << "fork bomb processes outlived the sandbox";
  EXPECT_NE(r.stderr_data.find("Cannot fork"), std::string::npos)
      << "exit " << r.exit_code << ", stdout: " << r.stdout_data << ", stderr: " << r.stderr_data;
}

TEST_F(Sandbox, MemoryBombIsOomKilledAndReportedSo) {
  policy.limits.memory_bytes = 64 << 20;
  const ExecResult r = *run(
      policy,
      Command{{"python3", "-c", "b = bytearray(300 << 20); print('allocated')"}, std::nullopt});
  EXPECT_TRUE(r.oom_killed);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.stdout_data, "");
  EXPECT_GE(r.peak_memory_bytes, 32u << 20);
  EXPECT_LE(r.peak_memory_bytes, 64u << 20);
}

TEST_F(Sandbox, RefusedSystemCallsFailWithErrno) {
  const ExecResult r = run(policy, Command{{"python3", "-c", R"(
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
def call(name, *args):
    rc = libc.syscall(*args)
    print(name, rc, errno.errorcode.get(ctypes.get_errno(), "0"))
call("unshare", 272, 0x10000000)
call("setns", 308, 0, 0)
call("mount", 165, b"none", b"/tmp", b"tmpfs", 0, 0)
call("keyctl", 250, 0, 0)
call("bpf", 321, 0, 0, 0)
call("perf_event_open", 298, 0, 0, -1, -1, 0)
call("userfaultfd", 323, 0)
call("io_uring_setup", 425, 1, 0)
call("open_by_handle_at", 304, 0, 0, 0)
call("kexec_load", 246, 0, 0, 0, 0)
call("init_module", 175, 0, 0, 0)
call("syslog", 103, 3, 0, 0)
call("clone_newuser", 56, 0x10000000 | 17, 0, 0, 0, 0)
call("clone3", 435, 0, 0)
)"},
                                           std::nullopt})
                           .value();
  for (const char* name : {"unshare", "setns", "mount", "keyctl", "bpf", "perf_event_open",
                           "userfaultfd", "io_uring_setup", "open_by_handle_at", "kexec_load",
                           "init_module", "syslog", "clone_newuser"})
    EXPECT_NE(r.stdout_data.find(std::string(name) + " -1 EPERM\n"), std::string::npos)
        << name << "\n"
        << r.stdout_data << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("clone3 -1 ENOSYS\n"), std::string::npos) << r.stdout_data;
}

// Root inside has no capability at all, none to gain through exec (bounding set empty, and
// no_new_privs), and runs under the seccomp filter.
TEST_F(Sandbox, EveryCapabilitySetIsEmpty) {
  const ExecResult r = run_sh("grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status");
  EXPECT_EQ(r.stdout_data,
            "CapInh:\t0000000000000000\n"
            "CapPrm:\t0000000000000000\n"
            "CapEff:\t0000000000000000\n"
            "CapBnd:\t0000000000000000\n"
            "CapAmb:\t0000000000000000\n"
            "NoNewPrivs:\t1\n"
            "Seccomp:\t2\n");
}

TEST_F(Sandbox, TiocstiIsRefused) {
  const ExecResult r = run(policy, Command{{"python3", "-c", R"(
import fcntl, termios, pty, errno
m, s = pty.openpty()
try:
    fcntl.ioctl(s, termios.TIOCSTI, b"x"); print("injected")
except OSError as e:
    print(errno.errorcode[e.errno]))"},
                                           std::nullopt})
                           .value();
  EXPECT_EQ(r.stdout_data, "EPERM\n") << r.stderr_data;
}

TEST_F(Sandbox, ProcInterfacesAreMaskedOrReadOnly) {
  // Masked files that exist on this host read empty inside; /proc/sys is read-only; only the
  // sandbox's own processes are listed.
  std::string script;
  int masked = 0;
  for (const char* file : {"/proc/kcore", "/proc/timer_list", "/proc/sched_debug", "/proc/keys"}) {
    if (!fs::exists(file)) continue;
    script += std::string("wc -c < ") + file + ";";
    ++masked;
  }
  ASSERT_GT(masked, 0);
  script +=
      " (echo 1 > /proc/sys/kernel/ns_last_pid) 2>&1 | grep -c 'Read-only';"
      " ls /proc | grep -c '^[0-9]*$'";
  const ExecResult r = run_sh(script);
  std::string expected;
  for (int i = 0; i < masked; ++i) expected += "0\n";
  expected += "1\n";
  EXPECT_EQ(r.stdout_data.substr(0, expected.size()), expected) << r.stdout_data << r.stderr_data;
  EXPECT_LE(std::stoi(r.stdout_data.substr(expected.size())), 5);
}

TEST_F(Sandbox, ProcFilesLeftUnmountedAreClosedByTheKernel) {
  // /proc/kmsg and /proc/sysvipc get no mount of their own: the kernel's permissions already
  // refuse them to a sandbox's root, which has no capability on the host.
  const ExecResult r = run_sh(
      "head -c1 /proc/kmsg 2>&1 | grep -c 'Permission denied'; "
      "(echo x > /proc/sysvipc/shm) 2>&1 | grep -c 'Permission denied'; "
      "id -u");
  EXPECT_EQ(r.stdout_data, "1\n1\n0\n") << r.stderr_data;
}

TEST_F(Sandbox, TimeoutKillsTheWholeTreeAndKeepsOutput) {
  policy.limits.timeout = std::chrono::milliseconds(800);
  const std::string marker = unique_sleep(2);
  const ExecResult r = run_sh("echo before; sleep " + marker + " & setsid nohup sleep " + marker +
                              " >/dev/null 2>&1 & sleep " + marker);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "before\n");
  EXPECT_LT(r.duration, std::chrono::seconds(5));
  EXPECT_EQ(host_processes_with(marker), 0) << "processes outlived the sandbox";
}

TEST_F(Sandbox, IdleTimeout) {
  policy.limits.idle_timeout = std::chrono::milliseconds(500);
  const ExecResult r = run_sh("echo tick; sleep 30");
  EXPECT_TRUE(r.idle_timed_out);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "tick\n");
}

TEST_F(Sandbox, NoOrphansAfterTheCommandExits) {
  const std::string marker = unique_sleep(3);
  const ExecResult r = run_sh("setsid sleep " + marker + " & nohup sleep " + marker + " & exit 0");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_LT(r.duration, std::chrono::seconds(5));
  EXPECT_EQ(host_processes_with(marker), 0);
}

TEST_F(Sandbox, OneSandboxCannotSignalAnother) {
  // Every sandbox's root is the same host uid, and every PID 1 is a child of the same spawner:
  // only the command's own session keeps a signal to its process group (0) from reaching the
  // processes of every other sandbox, and its pid namespace does the same for "everyone" (-1).
  const std::string marker = unique_sleep(7);
  auto neighbour = Session::start(runtime, policy);
  ASSERT_TRUE(neighbour) << neighbour.error().message;
  // The job's pid once it runs sleep: `$!` comes back before the fork has exec'd.
  auto started = (*neighbour)
                     ->exec("sleep " + marker + " >/dev/null 2>&1 & job=$!; until grep -q " +
                            marker + " /proc/$job/cmdline; do :; done; echo $job");
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_EQ(host_processes_with(marker), 1);

  const ExecResult attacker = run_sh("kill -KILL -1; kill -KILL 0; echo survived");
  EXPECT_EQ(attacker.signal, SIGKILL) << "the attacker's own group was not killed";
  EXPECT_EQ(attacker.stdout_data, "");

  EXPECT_EQ(host_processes_with(marker), 1) << "a process of another sandbox was killed";
  auto alive =
      (*neighbour)
          ->exec("kill -0 " + started->stdout_data.substr(0, started->stdout_data.size() - 1) +
                 " && echo alive");
  ASSERT_TRUE(alive) << alive.error().message;
  EXPECT_EQ(alive->stdout_data, "alive\n") << "the other sandbox's shell or its job was killed";
}

TEST_F(Sandbox, InheritedDescriptorsAreClosed) {
  const int leaked = open("/etc/hostname", O_RDONLY);  // deliberately not close-on-exec
  ASSERT_GE(leaked, 0);
  const int high = dup2(leaked, 77);
  const ExecResult r = run_sh("ls /proc/self/fd");
  close(leaked);
  close(high);
  std::set<std::string> fds;
  std::istringstream lines(r.stdout_data);
  for (std::string line; std::getline(lines, line);) fds.insert(line);
  // 0-2, and the directory ls is reading.
  EXPECT_EQ(fds, (std::set<std::string>{"0", "1", "2", "3"})) << r.stdout_data;
}

TEST_F(Sandbox, OutputFloodKeepsHeadAndTail) {
  policy.limits.output_bytes = 1 << 20;
  const ExecResult r =
      run_sh("echo first; head -c 50000000 /dev/zero | tr '\\0' a; echo; echo last");
  EXPECT_TRUE(r.truncated);
  EXPECT_TRUE(r.stdout_data.starts_with("first\naaa"));
  EXPECT_TRUE(r.stdout_data.ends_with("aaa\nlast\n"));
  EXPECT_LT(r.stdout_data.size(), (1u << 20) + 100);
  EXPECT_NE(r.stdout_data.find("bytes of output dropped]"), std::string::npos);
}

TEST_F(Sandbox, DiskFillStopsAtTheLimit) {
  policy.limits.disk_bytes = 16 << 20;
  const ExecResult r = run_sh("dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>&1; echo rc=$?");
  EXPECT_NE(r.stdout_data.find("No space left on device"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("rc=1"), std::string::npos);
}

TEST_F(Sandbox, HostnameIsPrivate) {
  char before[256] = {};
  gethostname(before, sizeof before - 1);
  const ExecResult r = run_sh("hostname; hostname changed 2>&1; hostname");
  char after[256] = {};
  gethostname(after, sizeof after - 1);
  EXPECT_TRUE(r.stdout_data.starts_with("sandbox\n")) << r.stdout_data;
  EXPECT_STREQ(before, after);
}

TEST_F(Sandbox, RootInsideIsAnUnprivilegedIdOnTheHost) {
  const fs::path workspace = fs::temp_directory_path() / unique("warren_ws_");
  fs::create_directories(workspace);
  fs::permissions(workspace, fs::perms::all);
  policy.workspace = workspace;
  policy.env = {"GREETING=hello"};
  auto r = run(policy, Command{{"/bin/sh", "-c", "id -u; pwd; echo $GREETING; cat; touch made"},
                               std::string("from stdin\n")});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "0\n/workspace\nhello\nfrom stdin\n");
  struct stat st {};
  ASSERT_EQ(stat((workspace / "made").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u) << "the sandbox's root must not be host root";
  fs::remove_all(workspace);
}

// Sandboxes start from many threads at once (the orchestrator's pool). The sandbox's first
// process is cloned from a multi-threaded parent and must not use glibc paths that assume the
// parent's threads exist (setxid broadcasts, fork handlers).
TEST_F(Sandbox, ConcurrentSandboxesFromManyThreads) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 8; ++i) {
        auto r = run(policy, Command{{"/bin/sh", "-c", "echo $$"}, std::nullopt});
        if (r && r->exit_code == 0 && r->stdout_data == "2\n") ++ok;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 48);
}

// A sandbox started while another is being set up must not keep the other's pipes open: a copy
// of stdin's write end would keep `cat` from ever reading EOF.
TEST_F(Sandbox, StdinReachesEofWhileOtherSandboxesStart) {
  std::atomic<bool> done{false};
  std::thread sleepers([&] {
    Policy p = policy;
    while (!done) (void)run(p, Command{{"sleep", "1"}, std::nullopt});
  });
  std::thread sleepers2([&] {
    while (!done) (void)run(policy, Command{{"sleep", "1"}, std::nullopt});
  });
  Policy quick = policy;
  quick.limits.timeout = std::chrono::seconds(3);
  int good = 0;
  for (int i = 0; i < 40; ++i) {
    auto r = run(quick, Command{{"cat"}, std::string("line ") + std::to_string(i)});
    if (r && !r->timed_out && r->stdout_data == "line " + std::to_string(i)) ++good;
  }
  done = true;
  sleepers.join();
  sleepers2.join();
  EXPECT_EQ(good, 40);
}

// An image directory as the root: bound read-only, with size-limited tmpfs where a system
// writes. busybox-static (scripts/setup.sh) makes the image: one static binary.
// An image is the root's lower layer: the sandbox writes anywhere in it, into a layer of its own
// bounded by the disk limit, and the image is never changed. Its /etc/hosts names localhost, as a
// container runtime's does. Its files keep their owners: root's
// are the sandbox root's (idmapped into the sandbox's id range, whatever range that is).
TEST_F(Sandbox, RootfsImageIsTheLowerLayerOfAWritableRoot) {
  const fs::path image = fs::temp_directory_path() / unique("warren_image_");
  for (const char* dir : {"bin", "dev", "proc", "tmp", "root", "home", "run", "var/tmp", "srv"})
    fs::create_directories(image / dir);
  ASSERT_TRUE(fs::exists("/bin/busybox")) << "scripts/setup.sh installs busybox-static";
  fs::copy_file("/bin/busybox", image / "bin/busybox");
  fs::create_symlink("busybox", image / "bin/sh");
  std::ofstream(image / "srv/data") << "image\n";
  ASSERT_EQ(chown((image / "srv/data").c_str(), 1000, 1000), 0);
  fs::permissions(image / "srv/data", fs::perms::all);  // the command has no CAP_DAC_OVERRIDE
  policy.rootfs = image;
  policy.workspace_path = "/srv";
  policy.limits.disk_bytes = 8 << 20;
  const auto r = run(policy, Command{{"/bin/sh", "-c",
                                      "pwd; echo kept > /tmp/note && cat /tmp/note;"
                                      " touch /bin/planted && echo written;"
                                      " echo changed >> data && cat data;"
                                      " /bin/busybox stat -c '%u %n' /bin/busybox data;"
                                      " /bin/busybox dd if=/dev/zero of=/big bs=1M count=16"
                                      " 2>/dev/null || echo full;"
                                      " /bin/busybox head -1 /etc/hosts; /bin/busybox ls /"},
                                     std::nullopt});
  // The cgroup v2 VMs see this host's files over 9p under an overlay: no idmapped mounts there.
  if (!r && r.error().message.find("has no idmapped mounts") != std::string::npos) {
    fs::remove_all(image);
    GTEST_SKIP() << r.error().message
                 << ": an image root needs them (ext4, xfs, btrfs; tmpfs from Linux 6.3)";
  }
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->exit_code, 0) << r->stderr_data;
  EXPECT_EQ(r->stdout_data,
            "/srv\nkept\nwritten\nimage\nchanged\n0 /bin/busybox\n1000 data\nfull\n"
            "127.0.0.1\tlocalhost\nbig\nbin\ndev\netc\nhome\nproc\nroot\nrun\nsrv\ntmp\nvar\n");
  EXPECT_FALSE(fs::exists(image / "bin/planted"));
  EXPECT_FALSE(fs::exists(image / "tmp/note"));
  std::ifstream data(image / "srv/data");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(data), {}), "image\n");

  // A setup step that fails names the path as the sandbox would see it.
  fs::remove(image / "proc");
  std::ofstream(image / "proc") << "not a directory";
  auto failed = run(policy, Command{{"/bin/sh", "-c", "true"}, std::nullopt});
  fs::remove_all(image);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().message, "sandbox setup failed: /proc: Not a directory");
}

TEST_F(Sandbox, ImpossiblePoliciesAreErrors) {
  policy.workspace = "/nonexistent/warren";
  auto r = run(policy, Command{{"true"}, std::nullopt});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "--workspace /nonexistent/warren is not a directory");

  policy.workspace.clear();
  const fs::path bad = fs::temp_directory_path() / unique("warren_policy_");
  std::ofstream(bad) << R"({"deny": ["mount", "no_such_syscall"]})";
  policy.seccomp_policy = bad;
  r = run(policy, Command{{"true"}, std::nullopt});
  fs::remove(bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "seccomp policy: unknown system call 'no_such_syscall'");
}

}  // namespace
}  // namespace warren::sandbox
