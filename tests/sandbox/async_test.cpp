// The Asio interface: many sandboxes and sessions supervised by coroutines on one thread. Needs
// root, like the rest of the sandbox suite.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <vector>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

// Runs one command and stores its result.
asio::awaitable<void> run_into(Runtime& runtime, Policy policy, std::string script,
                               ExecResult& out) {
  Command command;  // not a braced temporary in the co_await: GCC 12 rejects that
  command.argv = {"/bin/sh", "-c", script};
  auto r = co_await runtime.async_run(std::move(policy), std::move(command));
  out = r ? *r : ExecResult{};
  if (!r) out.stderr_data = "sandbox error: " + r.error().message;
}

class Async : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    policy.limits.timeout = std::chrono::seconds(30);
  }
  // Runs the io_context until everything spawned on it is done.
  void run_all() { io.run(); }

  asio::io_context io;  // one thread: whatever runs at once is interleaved by the coroutines
  Runtime runtime;
  Policy policy;
};

TEST_F(Async, SandboxesOnOneThreadRunAtTheSameTime) {
  // A barrier: each sandbox announces itself in a shared directory and waits until all have. One
  // thread supervising them one after the other would never get past the first.
  constexpr int kCount = 12;
  const fs::path meet = fs::temp_directory_path() / ("warren-meet-" + std::to_string(getpid()));
  fs::create_directories(meet);
  fs::permissions(meet, fs::perms::all);
  policy.mounts.push_back({meet, "/meet", false});
  std::vector<ExecResult> results(kCount);
  for (int i = 0; i < kCount; ++i) {
    const std::string script = "touch /meet/" + std::to_string(i) +
                               "; while [ $(ls /meet | wc -l) -lt " + std::to_string(kCount) +
                               " ]; do sleep 0.05; done; echo met " + std::to_string(i);
    asio::co_spawn(io, run_into(runtime, policy, script, results[i]), asio::detached);
  }
  run_all();
  fs::remove_all(meet);
  for (int i = 0; i < kCount; ++i) {
    EXPECT_FALSE(results[i].timed_out) << "sandbox " << i << " waited alone";
    EXPECT_EQ(results[i].stdout_data, "met " + std::to_string(i) + "\n");
  }
}

TEST_F(Async, ATimeoutEndsOneSandboxAndNotItsNeighbour) {
  ExecResult slow, quick;
  Policy short_timeout = policy;
  short_timeout.limits.timeout = std::chrono::milliseconds(300);
  asio::co_spawn(io, run_into(runtime, short_timeout, "echo before; sleep 30", slow),
                 asio::detached);
  asio::co_spawn(io, run_into(runtime, policy, "sleep 1; echo done", quick), asio::detached);
  run_all();
  EXPECT_TRUE(slow.timed_out);
  EXPECT_EQ(slow.stdout_data, "before\n");
  EXPECT_FALSE(quick.timed_out);
  EXPECT_EQ(quick.stdout_data, "done\n");
}

// An agent's loop in miniature: state set once, then steps; every answer goes to `seen`.
asio::awaitable<void> agent(Runtime& runtime, Policy policy, std::string name,
                            std::vector<std::string>& seen) {
  auto session = (co_await Session::async_start(runtime, std::move(policy))).value();
  (void)(co_await session->async_exec("cd /tmp && export WHO=" + name)).value();
  for (int step = 0; step < 3; ++step) {
    const ExecResult r = (co_await session->async_exec("sleep 0.1; echo $WHO $(pwd)")).value();
    seen.push_back(r.stdout_data);
  }
}

TEST_F(Async, SessionsInterleaveOnOneThread) {
  std::vector<std::string> seen;
  asio::co_spawn(io, agent(runtime, policy, "a", seen), asio::detached);
  asio::co_spawn(io, agent(runtime, policy, "b", seen), asio::detached);
  run_all();
  ASSERT_EQ(seen.size(), 6u);
  int a = 0, b = 0;
  for (const std::string& line : seen) {
    a += line == "a /tmp\n";
    b += line == "b /tmp\n";
  }
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 3);
  // Interleaved: the first three answers are not all from the same session.
  EXPECT_FALSE(seen[0] == seen[1] && seen[1] == seen[2]) << "one session ran to its end first";
}

}  // namespace
}  // namespace warren::sandbox
