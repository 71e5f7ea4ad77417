// Recycled sandboxes (recycle.hpp): a Runtime runs the next command of an equal policy in the
// sandbox of the last one, only once nothing of that command is left in it. ExecResult::recycled
// says which commands ran in a recycled sandbox, and the pid namespace each command reads from
// /proc confirms it was the same one; each test asserts what a command can see of the one before.
// They need root (CI runs as root); elsewhere they skip.
#include <gtest/gtest.h>
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

namespace fs = std::filesystem;
using testing::host_processes_with;
using testing::unique_sleep;

// A command's result, with its sandbox's pid namespace (the first line of its output) apart.
struct Ran {
  std::string pid_namespace;
  std::string output;
  ExecResult result;
};

class Recycle : public testing::SandboxFixture {
 protected:
  void SetUp() override {
    SandboxFixture::SetUp();
    if (!IsSkipped() && !testing::cgroups_are_reused())
      GTEST_SKIP() << "no sandbox is recycled here: a cgroup v2 kernel before 6.12 cannot reset "
                      "memory.peak, so a kept sandbox would report an earlier command's peak";
  }
  Ran run_in(Runtime& rt, const std::string& script, std::optional<std::string> input = {}) {
    auto r =
        rt.run(policy, Command{{"/bin/sh", "-c", "readlink /proc/self/ns/pid; " + script}, input});
    if (!r) throw std::runtime_error("sandbox failed: " + r.error().message);
    const std::string& out = r->stdout_data;
    const std::size_t newline = out.find('\n');
    if (newline == std::string::npos) return {"", out, *r};
    return {out.substr(0, newline), out.substr(newline + 1), *r};
  }
  Ran run(const std::string& script) { return run_in(runtime, script); }
  // `script` runs (and succeeds) in a recycled sandbox and leaves it so that the next command,
  // `probe`, gets a new one, where it prints `expected`.
  void expect_ends_its_sandbox(const std::string& script, const std::string& probe,
                               const std::string& expected);
};

// `later` ran in the sandbox `earlier` left.
void expect_recycled(const Ran& later, const Ran& earlier, const std::string& what = "") {
  EXPECT_TRUE(later.result.recycled) << what;
  EXPECT_EQ(later.pid_namespace, earlier.pid_namespace) << what;
}

void Recycle::expect_ends_its_sandbox(const std::string& script, const std::string& probe,
                                      const std::string& expected) {
  const Ran before = run("true");
  const Ran leaver = run(script);
  EXPECT_EQ(leaver.result.exit_code, 0) << script << ": " << leaver.result.stderr_data;
  expect_recycled(leaver, before, "before: " + script);
  const Ran after = run(probe);
  EXPECT_FALSE(after.result.recycled) << "after: " << script;
  EXPECT_EQ(after.output, expected) << script;
}

TEST_F(Recycle, TheNextCommandRunsInTheSameSandboxAsIfItWereNew) {
  const Ran first = run("echo $$; exit 3");
  policy.env = {"GREETING=hello"};  // the environment travels with each command
  const Ran second = run("echo $$ $GREETING");
  EXPECT_FALSE(first.result.recycled);
  expect_recycled(second, first);
  EXPECT_EQ(first.result.exit_code, 3);
  EXPECT_EQ(second.result.exit_code, 0) << second.result.stderr_data;
  // Numbered from 2 again, where the kernel lets PID 1 set the last pid (checkpoint/restore).
  if (fs::exists("/proc/sys/kernel/ns_last_pid")) {
    EXPECT_EQ(first.output, "2\n");
    EXPECT_EQ(second.output, "2 hello\n");
  }
  // Standard input reaches a recycled command as it does a new one.
  const Ran third = run_in(runtime, "cat", "typed\n");
  expect_recycled(third, first);
  EXPECT_EQ(third.output, "typed\n");
  // Without the spawner, PID 1 would be a copy of this whole process: never recycled.
  Runtime in_process{Runtime::Options{.keep = 1, .spawner = false}};
  (void)run_in(in_process, "true");
  EXPECT_FALSE(run_in(in_process, "true").result.recycled);
}

TEST_F(Recycle, NothingACommandLeftRunningIsThereForTheNext) {
  const std::string marker = unique_sleep(61);
  const Ran first = run("setsid sleep " + marker + " </dev/null >/dev/null 2>&1 & nohup sleep " +
                        marker + " </dev/null >/dev/null 2>&1 & sleep 0.2; echo started");
  EXPECT_EQ(first.output, "started\n");
  // PID 1 reports the exit only once everything else in the sandbox is dead and reaped.
  EXPECT_EQ(host_processes_with(marker), 0);
  const Ran second = run("ps -e -o args= | grep -c '^sleep '");
  expect_recycled(second, first);
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
        "echo x > /tmp/x"})
    expect_ends_its_sandbox(script,
                            "cat /tmp/left 2>&1; test -e /new || echo no /new; stat -c %a /home",
                            "cat: /tmp/left: No such file or directory\nno /new\n755\n");
}

TEST_F(Recycle, IpcObjectsLeftBehindEndTheSandbox) {
  // System V objects of each kind, and a POSIX message queue, outlive the process that made them.
  for (const std::string script :
       {"ipcmk -M 4096", "ipcmk -Q", "ipcmk -S 1",
        "python3 -c \"import ctypes, os; ctypes.CDLL(None).mq_open(b'/left', os.O_CREAT | "
        "os.O_RDWR, 0o600, None)\""})
    expect_ends_its_sandbox(script, "ipcs | grep -c '^0x'", "0\n");
  // Made and removed again, nothing is left: the sandbox stays.
  const Ran tidy = run("id=$(ipcmk -M 4096 | grep -o '[0-9]*$') && ipcrm -m $id && echo tidy");
  EXPECT_EQ(tidy.output, "tidy\n");
  expect_recycled(run("true"), tidy);
}

TEST_F(Recycle, ChangesToWhatPidOneHandsOnEndTheSandbox) {
  // The command has PID 1's ids: it may lower PID 1's limits, which the next command would
  // inherit, and it owns the devpts instance's ptmx.
  for (const std::string script : {"prlimit --pid 1 --nofile=64:64", "chmod 000 /dev/pts/ptmx"})
    expect_ends_its_sandbox(script, "ulimit -n; stat -c %a /dev/pts/ptmx", "1024\n666\n");
}

// PID 1 reports a changed sandbox and exits at once, so its report and its exit reach the
// supervisor together, in either order: the command's status must come through both ways. Many
// rounds, because one round picks one order; a lost report read as a kill (-1) in 1 of 5 runs.
TEST_F(Recycle, AChangedSandboxStillReportsHowTheCommandEnded) {
  for (int round = 0; round < 40; ++round) {
    const Ran before = run("true");
    const Ran changed = run("touch /tmp/left; exit 5");
    EXPECT_EQ(changed.result.exit_code, 5) << "round " << round;
    EXPECT_EQ(changed.result.signal, 0) << "round " << round;
    expect_recycled(changed, before);
  }
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
  expect_recycled(second, first);
  EXPECT_EQ(second.output, "one\n");
  // The same path made again is another directory: the old sandbox holds the old one.
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::all);
  std::ofstream(dir / "out") << "two\n";
  const Ran third = run("cat out");
  EXPECT_FALSE(third.result.recycled);
  EXPECT_EQ(third.output, "two\n");
  fs::remove_all(dir);
}

TEST_F(Recycle, ATimedOutSandboxIsNotReused) {
  const Ran before = run("true");
  // Long enough for the first line on a loaded, emulated machine (the cgroup v2 VMs: no KVM).
  policy.limits.timeout = std::chrono::milliseconds(1500);
  const Ran first = run("sleep 30");
  expect_recycled(first, before);
  EXPECT_TRUE(first.result.timed_out);
  policy.limits.timeout = std::chrono::seconds(20);
  const Ran second = run("true");
  EXPECT_FALSE(second.result.recycled);
}

TEST_F(Recycle, EachCommandReportsItsOwnPeakMemory) {
  const Ran big = run("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo done");
  EXPECT_EQ(big.output, "done\n");
  EXPECT_GT(big.result.peak_memory_bytes, 64ull << 20);
  const Ran small = run("true");
  expect_recycled(small, big);
  EXPECT_LT(small.result.peak_memory_bytes, 32ull << 20);
}

TEST_F(Recycle, OnlyAnEqualPolicyGetsARecycledSandbox) {
  (void)run("true");
  policy.hostname = "other";
  const Ran other = run("hostname");
  EXPECT_FALSE(other.result.recycled);
  EXPECT_EQ(other.output, "other\n");
  // A Runtime told to keep none starts a new sandbox every time.
  Runtime fresh{Runtime::Options{.recycle = 0}};
  (void)run_in(fresh, "true");
  EXPECT_FALSE(run_in(fresh, "true").result.recycled);
}

TEST_F(Recycle, ACommandTooLongToSendGetsANewSandbox) {
  (void)run("true");
  policy.env = {"BIG=" + std::string(100000, 'x')};  // over the 60 KiB a command message holds
  const Ran big = run("echo ${#BIG}");
  EXPECT_EQ(big.output, "100000\n") << big.result.stderr_data;
  EXPECT_FALSE(big.result.recycled);
  // The sandboxes waiting meanwhile are still there for commands that fit.
  policy.env.clear();
  EXPECT_TRUE(run("true").result.recycled);
}

// Field 22 of /proc/<pid>/stat, when the process started: with the pid it names a process even
// after its number is reused. Empty when there is no such process.
std::string start_time(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  if (text.empty()) return "";
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22; ++i) fields >> field;
  return field;
}

// The host pid of a process in the pid namespace `name` (-1: none).
pid_t process_in(const std::string& name) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::error_code ec;
    if (fs::read_symlink(entry.path() / "ns/pid", ec).string() == name)
      return std::stoi(entry.path().filename().string());
  }
  return -1;
}

TEST_F(Recycle, AWaitingSandboxEndsWithItsRuntime) {
  pid_t pid_one = -1;
  std::string started;
  {
    Runtime rt;
    pid_one = process_in(run_in(rt, "true").pid_namespace);
    // Its PID 1 waits for the next command.
    ASSERT_GT(pid_one, 0);
    started = start_time(pid_one);
    EXPECT_FALSE(started.empty());
  }
  for (int i = 0; i < 100 && start_time(pid_one) == started; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(start_time(pid_one), started);
}

TEST_F(Recycle, AWaitingSandboxEndsWhenItHasWaitedLongEnough) {
  Runtime rt{Runtime::Options{.recycle_idle = std::chrono::seconds(1)}};
  const pid_t pid_one = process_in(run_in(rt, "true").pid_namespace);
  ASSERT_GT(pid_one, 0);
  const std::string started = start_time(pid_one);
  // Nothing else happens in the Runtime: its own thread ends the sandbox.
  for (int i = 0; i < 150 && start_time(pid_one) == started; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_NE(start_time(pid_one), started);
  EXPECT_FALSE(run_in(rt, "true").result.recycled);
}

}  // namespace
}  // namespace warren::sandbox
