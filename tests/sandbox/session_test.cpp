// Sessions: state that carries over between commands, interruption without ending the session,
// and the file API against planted symlinks. Needs root, like the rest of the sandbox suite.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

using testing::host_processes_with;
using testing::unique_sleep;

namespace fs = std::filesystem;
using std::chrono::milliseconds;

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    auto s = Session::start(policy);
    ASSERT_TRUE(s.has_value()) << s.error().message;
    session = std::move(*s);
  }
  ExecResult exec(const std::string& command, milliseconds timeout = milliseconds(10000)) {
    auto r = session->exec(command, timeout);
    if (!r) throw std::runtime_error(r.error().message);
    return *r;
  }
  Policy policy;
  std::unique_ptr<Session> session;
};

TEST_F(SessionTest, StateCarriesOverBetweenCommands) {
  exec("cd /tmp && export GREETING=hi && counter=3");
  exec("sleep 300 & echo $! > /tmp/bg.pid");
  const ExecResult r =
      exec("pwd; echo $GREETING $counter; kill -0 $(cat /tmp/bg.pid) && echo bg-alive");
  EXPECT_EQ(r.stdout_data, "/tmp\nhi 3\nbg-alive\n");
}

TEST_F(SessionTest, EachCommandHasItsOwnStatusAndStreams) {
  const ExecResult failed = exec("echo to-err >&2; printf no-newline; false");
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_EQ(failed.stdout_data, "no-newline");
  EXPECT_EQ(failed.stderr_data, "to-err\n");
  EXPECT_EQ(exec("exit_code() { return 42; }; exit_code").exit_code, 42);
  // A syntax error is that command's error; the next command is unaffected.
  const ExecResult syntax = exec("echo 'unclosed");
  EXPECT_NE(syntax.exit_code, 0);
  EXPECT_NE(syntax.stderr_data.find("unexpected EOF"), std::string::npos);
  EXPECT_EQ(exec("echo fine").stdout_data, "fine\n");
  // Commands do not read the session's own input.
  EXPECT_EQ(exec("cat; echo after-cat").stdout_data, "after-cat\n");
}

TEST_F(SessionTest, TimeoutInterruptsTheCommandNotTheSession) {
  exec("sleep 300 & echo $! > /tmp/old.pid");
  // Long enough for the echo on a loaded, emulated machine (the cgroup v2 VMs have no KVM).
  const ExecResult r = exec("echo started; sleep 100 & sleep 200", milliseconds(1500));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.stdout_data, "started\n");
  EXPECT_LT(r.duration, milliseconds(6000));
  EXPECT_TRUE(session->alive());
  // The older background job survived; what the timed-out command started did not.
  const ExecResult after = exec("kill -0 $(cat /tmp/old.pid) && echo old-alive; pgrep -c -x sleep");
  EXPECT_EQ(after.stdout_data, "old-alive\n1\n");
}

TEST_F(SessionTest, ExitEndsTheSession) {
  const ExecResult r = exec("echo bye; exit 4");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.stdout_data, "bye\n");
  EXPECT_FALSE(session->alive());
  auto next = session->exec("true");
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error().message, "the session has ended");
}

TEST_F(SessionTest, FileApiReadsAndWritesInsideTheSandbox) {
  ASSERT_TRUE(session->write_file("/tmp/from-host.txt", "hello\n").has_value());
  const ExecResult r = exec(
      "cat /tmp/from-host.txt; stat -c '%u %a' /tmp/from-host.txt; "
      "mkdir -p /tmp/d && echo inside > /tmp/d/made.txt");
  EXPECT_EQ(r.stdout_data, "hello\n0 644\n");  // owned by the sandbox's root
  EXPECT_EQ(session->read_file("/tmp/d/made.txt").value(), "inside\n");
  const auto entries = session->list("/tmp/d").value();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "made.txt");
  EXPECT_EQ(entries[0].type, FileInfo::Type::File);
  EXPECT_EQ(entries[0].size, 7u);
  EXPECT_EQ(session->stat("/tmp/d").value().type, FileInfo::Type::Directory);
  EXPECT_FALSE(fs::exists("/tmp/from-host.txt")) << "the write landed on the host";
  const auto missing = session->read_file("/tmp/nothing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message, "read /tmp/nothing: No such file or directory");
}

TEST_F(SessionTest, PlantedSymlinksCannotReachHostFiles) {
  const std::string secret = "/root/warren_session_secret_" + std::to_string(getpid());
  std::ofstream(secret) << "host secret";
  exec(
      "ln -s /etc/shadow /tmp/shadow; ln -s /root /tmp/rootdir; ln -s ../../../../../etc /tmp/up;"
      " ln -s /proc/1/root /tmp/magic");
  // The sandbox's shadow is masked by /dev/null, a device the host does not open.
  const auto shadow = session->read_file("/tmp/shadow");
  ASSERT_FALSE(shadow.has_value());
  EXPECT_EQ(shadow.error().message, "read /tmp/shadow: a character device, not a regular file");
  const auto via_root = session->read_file("/tmp/rootdir/" + fs::path(secret).filename().string());
  EXPECT_FALSE(via_root.has_value()) << "read a host file through a planted symlink";
  EXPECT_FALSE(session->read_file("/tmp/magic/etc/hostname").has_value());
  const std::string before = [] {
    std::ifstream in("/etc/hostname");
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }();
  const auto write = session->write_file("/tmp/up/hostname", "pwned");
  EXPECT_FALSE(write.has_value());  // resolves to the sandbox's read-only /etc
  std::ifstream in("/etc/hostname");
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), before);
  fs::remove(secret);
}

// Folders made through the file API are the sandbox root's, 0755, made inside the root: a link
// planted on the way resolves inside it, and nothing is made on the host.
TEST_F(SessionTest, FoldersAreMadeInsideTheSandbox) {
  ASSERT_TRUE(session->make_directories("/tmp/a/b/c").has_value());
  EXPECT_EQ(exec("stat -c '%u %a' /tmp/a /tmp/a/b/c").stdout_data, "0 755\n0 755\n");
  ASSERT_TRUE(session->make_directories("/tmp/a/b/c").has_value());  // already there: kept
  const std::string name = "warren_made_" + std::to_string(getpid());
  exec("ln -s /root /tmp/rootdir; ln -s ../../../../.. /tmp/up; echo x > /tmp/file");
  (void)session->make_directories("/tmp/rootdir/" + name);
  (void)session->make_directories("/tmp/up/tmp/" + name);
  EXPECT_FALSE(fs::exists("/root/" + name)) << "a folder was made on the host";
  EXPECT_FALSE(fs::exists("/tmp/" + name)) << "a folder was made on the host";
  EXPECT_EQ(exec("[ -d /tmp/" + name + " ] && echo inside").stdout_data, "inside\n");
  const auto through_file = session->make_directories("/tmp/file/below");
  ASSERT_FALSE(through_file.has_value());
  EXPECT_EQ(through_file.error().message, "make /tmp/file: Not a directory");
}

}  // namespace
}  // namespace warren::sandbox
