// Recycled sandboxes (recycle.hpp): a Runtime runs the next command of an equal policy in the
// sandbox of the last one, only once nothing of that command is left in it. Each test tells
// whether two commands shared a sandbox by the inode of their pid namespace, and asserts what the
// second one can see of the first. They need root (CI runs as root); elsewhere they skip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace fs = std::filesystem;
using testing::host_processes_with;
using testing::unique_sleep;

class Recycle : public testing::SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    if (!IsSkipped() && !testing::cgroups_are_reused())
      GTEST_SKIP() << "no sandbox is recycled here: a cgroup v2 kernel before 6.12 cannot reset "
                      "memory.peak, so a kept sandbox would report an earlier command's peak";
  }
  // The command's output after the first line, which is its sandbox's pid namespace.
  struct Ran {
    std::string pid_namespace;
    std::string output;
    ExecResult result;
  };
  Ran run_in(Runtime& rt, const std::string& script) {
    auto r = rt.run(
        policy, Command{{"/bin/sh", "-c", "readlink /proc/self/ns/pid; " + script}, std::nullopt});
    if (!r) throw std::runtime_error("sandbox failed: " + r.error().message);
    const std::string& out = r->stdout_data;
    const std::size_t newline = out.find('\n');
    if (newline == std::string::npos) return {"", out, *r};
    return {out.substr(0, newline), out.substr(newline + 1), *r};
  }
  Ran run(const std::string& script) { return run_in(runtime, script); }
};

TEST_F(Recycle, TheNextCommandRunsInTheSameSandboxAsIfItWereNew) {
  // Through the spawner and from this process alike.
  Runtime in_process{Runtime::Options{.keep = 1, .spawner = false}};
  for (Runtime* rt : {&runtime, &in_process}) {
    const Ran first = run_in(*rt, "echo $$; exit 3");
    policy.env = {"GREETING=hello"};  // the environment travels with each command
    const Ran second = run_in(*rt, "echo $$ $GREETING");
    policy.env.clear();
    ASSERT_FALSE(first.pid_namespace.empty());
    EXPECT_EQ(second.pid_namespace, first.pid_namespace) << "not recycled";
    EXPECT_EQ(first.result.exit_code, 3);
    EXPECT_EQ(second.result.exit_code, 0) << second.result.stderr_data;
    // Numbered from 2 again.
    EXPECT_EQ(first.output, "2\n");
    EXPECT_EQ(second.output, "2 hello\n");
  }
}

TEST_F(Recycle, NothingACommandLeftRunningIsThereForTheNext) {
  const std::string marker = unique_sleep(61);
  const Ran first = run("setsid sleep " + marker + " </dev/null >/dev/null 2>&1 & nohup sleep " +
                        marker + " </dev/null >/dev/null 2>&1 & sleep 0.2; echo started");
  EXPECT_EQ(first.output, "started\n");
  // PID 1 reports the exit only once everything else in the sandbox is dead and reaped.
  EXPECT_EQ(host_processes_with(marker), 0);
  const Ran second = run("ps -e -o args= | grep -c '^sleep '");
  EXPECT_EQ(second.pid_namespace, first.pid_namespace) << "not recycled";
  EXPECT_EQ(second.output, "0\n");
}

TEST_F(Recycle, AnythingWrittenToTheRootEndsTheSandbox) {
  // Each leaves the root as it was not: a file, a directory, a file made and removed (the
  // directory's times), a mode, an extended attribute.
  for (const std::string script :
       {"echo secret > /tmp/left", "mkdir /new", "sleep 0.05; touch /tmp/t && rm /tmp/t",
        "chmod 700 /home",
        // tmpfs takes user attributes from Linux 6.6; before, the script leaves a file instead.
        "python3 -c \"import os; os.setxattr('/tmp', 'user.note', b'secret')\" 2>/dev/null || "
        "echo x > /tmp/x"}) {
    const Ran before = run("true");
    const Ran writer = run(script);
    EXPECT_EQ(writer.pid_namespace, before.pid_namespace) << "not recycled before: " << script;
    const Ran after = run("cat /tmp/left 2>&1; ls / | tr '\\n' ' '; stat -c %a /home");
    EXPECT_NE(after.pid_namespace, writer.pid_namespace) << "recycled after: " << script;
    EXPECT_EQ(after.output,
              "cat: /tmp/left: No such file or directory\nbin dev etc home lib lib32 lib64 opt "
              "proc root run sbin tmp usr var 755\n")
        << script;
  }
}

TEST_F(Recycle, IpcObjectsLeftBehindEndTheSandbox) {
  // System V objects of each kind, and a POSIX message queue, outlive the process that made them.
  const std::string count = "ipcs | grep -c '^0x'; ls /dev/mqueue 2>/dev/null | wc -l";
  for (const std::string script :
       {"ipcmk -M 4096", "ipcmk -Q", "ipcmk -S 1",
        "python3 -c \"import ctypes, os; ctypes.CDLL(None).mq_open(b'/left', os.O_CREAT | "
        "os.O_RDWR, 0o600, None)\""}) {
    const Ran before = run("true");
    const Ran maker = run(script + " >/dev/null && echo made");
    EXPECT_EQ(maker.output, "made\n") << script << ": " << maker.result.stderr_data;
    EXPECT_EQ(maker.pid_namespace, before.pid_namespace) << "not recycled before: " << script;
    const Ran after = run(count);
    EXPECT_NE(after.pid_namespace, maker.pid_namespace) << "recycled after: " << script;
    EXPECT_EQ(after.output, "0\n0\n") << script;
  }
  // Made and removed again, nothing is left: the sandbox stays.
  const Ran tidy = run("id=$(ipcmk -M 4096 | grep -o '[0-9]*$') && ipcrm -m $id && echo tidy");
  EXPECT_EQ(tidy.output, "tidy\n");
  EXPECT_EQ(run("true").pid_namespace, tidy.pid_namespace);
}

TEST_F(Recycle, WorkspaceWritesKeepTheSandboxAndAReplacedWorkspaceEndsIt) {
  const fs::path dir = fs::temp_directory_path() / ("warren_recycle_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);  // the sandbox's root is not the host's
  policy.workspace = dir.string();
  const Ran first = run("echo one > out; cat out");
  EXPECT_EQ(first.output, "one\n");
  const Ran second = run("cat out");
  EXPECT_EQ(second.pid_namespace, first.pid_namespace) << "not recycled";
  EXPECT_EQ(second.output, "one\n");
  // The same path made again is another directory: the old sandbox holds the old one.
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);
  std::ofstream(dir / "out") << "two\n";
  const Ran third = run("cat out");
  EXPECT_NE(third.pid_namespace, first.pid_namespace);
  EXPECT_EQ(third.output, "two\n");
  fs::remove_all(dir);
}

TEST_F(Recycle, ATimedOutSandboxIsNotReused) {
  policy.limits.timeout = std::chrono::milliseconds(300);
  const Ran first = run("sleep 5");
  EXPECT_TRUE(first.result.timed_out);
  policy.limits.timeout = std::chrono::seconds(20);
  const Ran second = run("true");
  EXPECT_NE(second.pid_namespace, first.pid_namespace);
}

TEST_F(Recycle, EachCommandReportsItsOwnPeakMemory) {
  const Ran big = run("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo done");
  EXPECT_EQ(big.output, "done\n");
  EXPECT_GT(big.result.peak_memory_bytes, 64ull << 20);
  const Ran small = run("true");
  EXPECT_EQ(small.pid_namespace, big.pid_namespace) << "not recycled";
  EXPECT_LT(small.result.peak_memory_bytes, 32ull << 20);
}

TEST_F(Recycle, OnlyAnEqualPolicyGetsARecycledSandbox) {
  const Ran first = run("true");
  policy.hostname = "other";
  const Ran other = run("hostname");
  EXPECT_NE(other.pid_namespace, first.pid_namespace);
  EXPECT_EQ(other.output, "other\n");
  // A Runtime told to keep none starts a new sandbox every time.
  Runtime fresh{Runtime::Options{.recycle = 0}};
  EXPECT_NE(run_in(fresh, "true").pid_namespace, run_in(fresh, "true").pid_namespace);
}

TEST_F(Recycle, ACommandTooLongToSendGetsANewSandbox) {
  const Ran first = run("true");
  policy.env = {"BIG=" + std::string(100000, 'x')};  // over the 60 KiB a command message holds
  const Ran big = run("echo ${#BIG}");
  EXPECT_EQ(big.output, "100000\n") << big.result.stderr_data;
  EXPECT_NE(big.pid_namespace, first.pid_namespace);
  // Which is recyclable itself, for commands that fit.
  policy.env.clear();
  EXPECT_EQ(run("true").pid_namespace, big.pid_namespace);
}

// Host processes in the pid namespace `name` (as readlink shows it: pid:[inode]).
int processes_in(const std::string& name) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::error_code ec;
    if (fs::read_symlink(entry.path() / "ns/pid", ec).string() == name) ++count;
  }
  return count;
}

TEST_F(Recycle, AWaitingSandboxEndsWithItsRuntime) {
  std::string name;
  {
    Runtime rt;
    name = run_in(rt, "true").pid_namespace;
    // Its PID 1 waits for the next command.
    EXPECT_EQ(processes_in(name), 1);
  }
  for (int i = 0; i < 100 && processes_in(name) > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(processes_in(name), 0);
}

}  // namespace
}  // namespace warren::sandbox
