// Adversarial tests of what the host does with agent-controlled data (docs/security.md): the
// file API never opens a device, fifo or socket and holds no capability the sandbox lacks;
// snapshots are taken of a sandbox whose processes are stopped, copy holes as holes and links as
// links, and stop at their limit; sockets of families a tool does not need are refused; the host's
// identity does not leak through /proc. Each test asserts the effect on the host. Needs root.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>

#include "../sandbox/host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using testing::sh;
using testing::slurp;

class HostIo : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-host-io-" + std::to_string(getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "empty");
    ASSERT_TRUE(copy_workspace((base / "empty").string(), (base / "ws").string()));
    policy.workspace = (base / "ws").string();
    policy.limits.timeout = seconds(30);
  }
  void TearDown() override { fs::remove_all(base); }

  std::unique_ptr<Session> start() {
    auto s = Session::start(runtime, policy);
    if (!s) throw std::runtime_error(s.error().message);
    return std::move(*s);
  }

  Runtime runtime;
  Policy policy;
  fs::path base;
};

// Item 2: a fifo would block the harness past every limit, a device would be opened as host root
// (/dev/tty is the operator's terminal): each is refused by type without being opened.
TEST_F(HostIo, TheFileApiOpensNoDeviceFifoOrSocket) {
  auto s = start();
  sh(*s,
     "mkfifo /workspace/fifo && python3 -c \"import socket; "
     "socket.socket(socket.AF_UNIX).bind('/workspace/sock')\" && ln -s /dev/tty tty-link");
  // Every call comes back at once; if one blocked, the future would still be pending.
  auto calls = std::async(std::launch::async, [&] {
    std::vector<std::string> errors;
    for (const char* path : {"fifo", "sock", "/dev/tty", "tty-link", "/dev/ptmx", "/dev/zero"}) {
      auto read = s->read_file(path);
      errors.push_back(read ? "read " + std::string(path) + " succeeded" : read.error().message);
      auto write = s->write_file(path, "\x1b[2J written by the host\n");
      errors.push_back(write ? "write " + std::string(path) + " succeeded" : write.error().message);
    }
    return errors;
  });
  ASSERT_EQ(calls.wait_for(seconds(20)), std::future_status::ready) << "the file API blocked";
  const std::vector<std::string> errors = calls.get();
  const std::vector<std::string> expected = {
      "read fifo: a fifo, not a regular file",
      "write fifo: a fifo, not a regular file",
      "read sock: a socket, not a regular file",
      "write sock: a socket, not a regular file",
      "read /dev/tty: a character device, not a regular file",
      "write /dev/tty: a character device, not a regular file",
      "read tty-link: a character device, not a regular file",
      "write tty-link: a character device, not a regular file",
      "read /dev/ptmx: a character device, not a regular file",
      "write /dev/ptmx: a character device, not a regular file",
      "read /dev/zero: a character device, not a regular file",
      "write /dev/zero: a character device, not a regular file"};
  EXPECT_EQ(errors, expected);
  // Regular files still work both ways, and listing a fifo is refused as not a directory.
  ASSERT_TRUE(s->write_file("note.txt", "from the host\n"));
  EXPECT_EQ(s->read_file("/workspace/note.txt").value(), "from the host\n");
  EXPECT_EQ(sh(*s, "stat -c '%u %a' note.txt"), "0 644\n");  // the sandbox's root owns it
  EXPECT_FALSE(s->list("fifo").has_value());
}

// Item 2: the file API acts with the sandbox root's ids and no capability, so what the sandbox
// cannot read (an undumpable PID 1's memory map) the host does not read for it either.
TEST_F(HostIo, TheFileApiHoldsNoCapabilityTheSandboxLacks) {
  auto s = start();
  EXPECT_NE(sh(*s, "cat /proc/1/maps 2>&1; echo status=$?").find("status=1"), std::string::npos);
  auto maps = s->read_file("/proc/1/maps");
  ASSERT_FALSE(maps.has_value()) << "read PID 1's memory map: " << maps->substr(0, 80);
  EXPECT_EQ(maps.error().message, "read /proc/1/maps: Permission denied");
  // A root-only file in the sandbox's root layer is the sandbox root's, and readable by it.
  sh(*s, "echo mine > /root/private && chmod 600 /root/private");
  EXPECT_EQ(s->read_file("/root/private").value(), "mine\n");
  // The capabilities come back afterwards: the host can still do its own work on this thread.
  const fs::path host_file = base / "root-only";
  std::ofstream(host_file) << "host";
  fs::permissions(host_file, fs::perms::owner_read);
  EXPECT_EQ(slurp(host_file), "host");
}

// Item 3: a background job that swaps a file and a fifo while the snapshot is taken used to block
// the harness in open() forever. The job is stopped while the copy runs, and a fifo found in
// place of a file is copied as a fifo, never opened.
TEST_F(HostIo, ASnapshotIsNotHeldUpByABackgroundJob) {
  auto s = start();
  sh(*s,
     "mkfifo /workspace/b && echo data > /workspace/a && (python3 -c \"\n"
     "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
     "while True: libc.syscall(316, -100, b'/workspace/a', -100, b'/workspace/b', 2)\n"
     "\" > /dev/null 2>&1 &) ; sleep 0.2");
  for (int round = 0; round < 8; ++round) {
    const fs::path dir = base / ("snap" + std::to_string(round));
    auto taken = std::async(std::launch::async, [&] { return s->snapshot(dir.string()); });
    ASSERT_EQ(taken.wait_for(seconds(20)), std::future_status::ready)
        << "round " << round << ": the snapshot blocked";
    ASSERT_TRUE(taken.get()) << "round " << round;
    // One of a and b is the file and the other the fifo, whichever way round the job left them.
    const auto a = fs::symlink_status(dir / "workspace" / "a").type();
    const auto b = fs::symlink_status(dir / "workspace" / "b").type();
    EXPECT_EQ(std::set({a, b}), std::set({fs::file_type::regular, fs::file_type::fifo}));
  }
  // The job was continued: it still runs.
  EXPECT_EQ(sh(*s, "pgrep -c -f 'libc.syscall' >/dev/null && echo running"), "running\n");
}

// Item 4's snapshot half: sparse files stay sparse and hard links stay links, so a snapshot takes
// on the host what the sandbox took; past its limit it stops, says so and leaves nothing.
TEST_F(HostIo, SnapshotsKeepHolesAndLinksAndStopAtTheirLimit) {
  auto s = start();
  sh(*s,
     "for i in 1 2 3 4; do truncate -s 1G /workspace/sparse$i; done; "
     "printf 'tail\\n' | dd of=/workspace/sparse1 bs=1 seek=536870912 conv=notrunc 2>/dev/null; "
     "head -c 100000 /dev/urandom > /root/big; "
     "ln /root/big /root/big-link; ln /root/big /root/big-link2");
  const fs::path dir = base / "snap";
  auto saved = s->snapshot(dir.string());
  ASSERT_TRUE(saved) << saved.error().message;
  std::uint64_t allocated = 0, apparent = 0;
  std::set<ino_t> seen;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    ASSERT_EQ(lstat(entry.path().c_str(), &st), 0);
    if (!S_ISREG(st.st_mode) || !seen.insert(st.st_ino).second) continue;
    allocated += static_cast<std::uint64_t>(st.st_blocks) * 512;
    apparent += static_cast<std::uint64_t>(st.st_size);
  }
  EXPECT_EQ(apparent, 4 * (1ULL << 30) + 100000);  // sizes kept, the big file counted once
  EXPECT_LT(allocated, 8ULL << 20) << "holes were written out";
  std::ifstream sparse(dir / "workspace" / "sparse1", std::ios::binary);
  sparse.seekg((1LL << 29) - 2);
  char around[8] = {};
  sparse.read(around, sizeof around);
  EXPECT_EQ(std::string(around, sizeof around), std::string("\0\0tail\n\0", 8));
  struct stat big {
  }, link{}, link2{};
  ASSERT_EQ(stat((dir / "root" / "root" / "big").c_str(), &big), 0);
  ASSERT_EQ(stat((dir / "root" / "root" / "big-link").c_str(), &link), 0);
  ASSERT_EQ(stat((dir / "root" / "root" / "big-link2").c_str(), &link2), 0);
  EXPECT_EQ(big.st_ino, link.st_ino);
  EXPECT_EQ(big.st_ino, link2.st_ino);
  EXPECT_EQ(big.st_nlink, 3u);

  // The same sandbox with a limit of 64 KiB: the 100 kB file is over it.
  policy.limits.snapshot_bytes = 64 << 10;
  auto limited = start();
  sh(*limited, "head -c 100000 /dev/zero > /workspace/big");
  auto refused = limited->snapshot((base / "limited").string());
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message,
            "snapshot: more than 65536 bytes, the limit of one copy; nothing was kept");
  EXPECT_FALSE(fs::exists(base / "limited"));
  policy.limits.snapshot_bytes = 1 << 30;
  policy.limits.snapshot_files = 50;
  auto many = start();
  sh(*many, "mkdir /workspace/m && cd /workspace/m && touch $(seq 1 100)");
  auto too_many = many->snapshot((base / "many").string());
  ASSERT_FALSE(too_many.has_value());
  EXPECT_EQ(
      too_many.error().message,
      "snapshot: more than 50 files and directories, the limit of one copy; nothing was kept");
}

// Item 5: a set-id copy of python made in a workspace used to stay set-id on the host, owned by
// the sandbox's host uid, for any host user to run as that uid. The bits are gone once the
// command ends, in a session and in a one-shot run; run by nobody, it is nobody.
TEST_F(HostIo, SetIdBitsDoNotSurviveACommand) {
  auto s = start();
  EXPECT_EQ(sh(*s,
               "cp /usr/bin/python3 /workspace/py && chmod 6755 /workspace/py && "
               "stat -c %a /workspace/py"),
            "6755\n");  // the command itself may make one; it just does not outlive the command
  struct stat st {};
  ASSERT_EQ(stat((base / "ws" / "py").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  auto r =
      run(policy, Command{{"sh", "-c", "cp /bin/sh /workspace/sh2 && chmod 4755 /workspace/sh2"}});
  ASSERT_TRUE(r && r->exit_code == 0);
  ASSERT_EQ(stat((base / "ws" / "sh2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  const std::string as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups " +
                                (base / "ws" / "py").string() +
                                " -c 'import os; print(os.geteuid(), os.getegid())'";
  FILE* p = popen(as_nobody.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[64] = {};
  ASSERT_NE(fgets(line, sizeof line, p), nullptr);
  pclose(p);
  EXPECT_EQ(std::string(line), "65534 65534\n");
}

// Item 5: sandboxes running at once are distinct host uids, in ranges that do not overlap, so a
// process with one sandbox's uid (say through a set-id file that did survive) can neither signal
// another sandbox's processes nor write its files.
TEST_F(HostIo, SandboxesRunningAtOnceAreDistinctHostIds) {
  Policy bare;  // no workspace: each takes a range of its own
  bare.limits.timeout = seconds(30);
  std::vector<std::unique_ptr<Session>> sessions;
  std::vector<unsigned> uids;
  for (int i = 0; i < 3; ++i) {
    auto s = Session::start(runtime, bare);
    ASSERT_TRUE(s) << s.error().message;
    const std::string marker = testing::unique_sleep(i);
    sh(**s, "sleep " + marker + " & sleep 0.1");
    const auto pids = processes_on_host(marker);
    ASSERT_EQ(pids.size(), 1u);
    std::ifstream status("/proc/" + std::to_string(pids[0]) + "/status");
    std::string key;
    unsigned uid = 0;
    while (status >> key && key != "Uid:") {
    }
    status >> uid;
    uids.push_back(uid);
    sessions.push_back(std::move(*s));
  }
  for (std::size_t i = 0; i < uids.size(); ++i) {
    EXPECT_GE(uids[i], 100000u + 65536u) << "not a range of its own";
    EXPECT_EQ((uids[i] - 100000u) % 65536u, 0u);
    for (std::size_t j = 0; j < i; ++j) EXPECT_NE(uids[i], uids[j]);
  }
  // The first sandbox's uid cannot signal the second's sleep.
  const auto victim = processes_on_host(testing::unique_sleep(1));
  ASSERT_EQ(victim.size(), 1u);
  const std::string kill = "setpriv --reuid=" + std::to_string(uids[0]) +
                           " --regid=" + std::to_string(uids[0]) + " --clear-groups kill -9 " +
                           std::to_string(victim[0]) + " 2>/dev/null";
  EXPECT_NE(std::system(kill.c_str()), 0);
  EXPECT_EQ(processes_on_host(testing::unique_sleep(1)).size(), 1u);
  // Two ranges taken in one process are distinct too, and each is free again once let go.
  auto a = IdRange::take(), b = IdRange::take();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->base(), b->base());
}

// Item 4: a workspace is a filesystem of its own on the host, bounded in bytes and inodes: a
// command that fills it gets ENOSPC and the host's disk is untouched; inside, neither the host's
// path nor the host disk's figures show. remove_workspace takes the filesystem away.
TEST_F(HostIo, AWorkspaceIsBoundedOnTheHost) {
  auto ids = IdRange::take();
  ASSERT_TRUE(ids);
  const fs::path ws = base / "bounded";
  ASSERT_TRUE(make_workspace(base.string(), {{"empty", ""}}, ws.string(), ids->base(),
                             {.bytes = 8 << 20, .files = 1000}));
  policy.workspace = ws.string();
  policy.host_ids = ids->base();
  auto s = start();
  EXPECT_EQ(sh(*s, "head -c 20M /dev/zero > big; echo status=$?"),
            "status=1\nhead: error writing 'standard output': No space left on device\n");
  struct stat st {};
  ASSERT_EQ(stat((ws / "big").c_str(), &st), 0);
  EXPECT_LE(static_cast<std::uint64_t>(st.st_blocks) * 512, 8u << 20);
  EXPECT_EQ(sh(*s,
               "rm big; for i in $(seq 1 2000); do : > f$i || break; done 2>/dev/null; "
               "ls | wc -l"),
            "999\n");  // the top directory is the thousandth inode
  EXPECT_EQ(sh(*s, "df -B1 --output=size /workspace | tail -1 | tr -d ' '"), "8388608\n");
  const std::string mountinfo = sh(*s, "cat /proc/self/mountinfo");
  EXPECT_EQ(mountinfo.find(base.string()), std::string::npos) << mountinfo;
  s.reset();

  // Files more than the limit are refused when the workspace is made, and nothing is left.
  std::ofstream(base / "empty" / "large", std::ios::binary) << std::string(9 << 20, 'x');
  auto too_big = make_workspace(base.string(), {{"empty", ""}}, (base / "over").string(),
                                ids->base(), {.bytes = 8 << 20});
  ASSERT_FALSE(too_big.has_value());
  EXPECT_NE(too_big.error().message.find("the files are more than the workspace's limit of "
                                         "8388608 bytes"),
            std::string::npos)
      << too_big.error().message;
  EXPECT_FALSE(fs::exists(base / "over"));

  ASSERT_TRUE(remove_workspace(ws.string()));
  EXPECT_FALSE(fs::exists(ws));
  EXPECT_EQ(slurp("/proc/self/mountinfo").find(ws.string()), std::string::npos);
}

// Item 7: vsock leads towards a VM's host whatever the network namespace. Only the families a
// tool needs are allowed, and a family hidden in the upper half of the register is refused too.
TEST_F(HostIo, OnlyTheSocketFamiliesAToolNeedsCanBeCreated) {
  auto r = run(policy, Command{{"python3", "-c", R"(
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def family(domain, kind=socket.SOCK_STREAM):
    fd = libc.syscall(41, ctypes.c_long(domain), kind, 0)
    return 'ok' if fd >= 0 else 'errno %d' % ctypes.get_errno()
print('vsock', family(40))
print('vsock high bits', family(40 | (1 << 32)))
print('unix high bits', family(1 | (1 << 32)))
print('packet', family(17, socket.SOCK_RAW))
print('alg', family(38, socket.SOCK_SEQPACKET))
print('bluetooth', family(31))
print('unspec', family(0))
print('negative', family(-1))
print('unix', family(1))
print('inet', family(2))
print('inet6', family(10))
print('netlink', family(16, socket.SOCK_RAW))
print('socketpair vsock', 'ok' if libc.socketpair(40, 1, 0, (ctypes.c_int * 2)()) == 0 else 'errno %d' % ctypes.get_errno())
)"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->stdout_data,
            "vsock errno 97\nvsock high bits errno 97\nunix high bits errno 97\n"
            "packet errno 97\nalg errno 97\nbluetooth errno 97\nunspec errno 97\n"
            "negative errno 97\nunix ok\ninet ok\ninet6 ok\nnetlink ok\n"
            "socketpair vsock errno 97\n")
      << r->stderr_data;
}

// Item 8: the boot's command line, the kernel's configuration and the boot id name the host.
TEST_F(HostIo, TheHostsIdentityDoesNotLeakThroughProc) {
  auto r = run(policy, Command{{"sh", "-c",
                                "for f in /proc/cmdline /proc/config.gz "
                                "/proc/sys/kernel/random/boot_id; do "
                                "[ -e $f ] && echo \"$f $(wc -c < $f)\"; done; true"}});
  ASSERT_TRUE(r) << r.error().message;
  std::string expected;
  for (const char* f : {"/proc/cmdline", "/proc/config.gz", "/proc/sys/kernel/random/boot_id"})
    if (fs::exists(f)) expected += std::string(f) + " 0\n";
  EXPECT_FALSE(slurp("/proc/cmdline").empty());  // the host has them, with something in them
  EXPECT_EQ(r->stdout_data, expected) << r->stderr_data;
}

}  // namespace
}  // namespace warren::sandbox
