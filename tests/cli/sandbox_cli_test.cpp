// `warren sandbox exec` as users call it: exit statuses, --json, bad flags.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <filesystem>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"

namespace {

using warren::testing::Outcome;
using warren::testing::slurp;
using warren::testing::warren;

class SandboxCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0)
      GTEST_SKIP() << "sandbox tests need root: they create namespaces and cgroups";
  }
};

TEST_F(SandboxCli, ExitStatusIsTheCommands) {
  const Outcome r = warren("sandbox exec -- sh -c 'echo out; echo err >&2; exit 7'");
  EXPECT_EQ(r.status, 7);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_F(SandboxCli, TimeoutIs124AndMemoryIs137) {
  EXPECT_EQ(warren("sandbox exec --timeout 0.5 -- sleep 30").status, 124);
  EXPECT_EQ(warren("sandbox exec --memory 48M -- python3 -c 'b = bytearray(200 << 20)'").status,
            137);
}

TEST_F(SandboxCli, JsonResult) {
  const Outcome r = warren("sandbox exec --json -- sh -c 'printf hi; exit 2'");
  ASSERT_EQ(r.status, 2) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["exit_code"], 2);
  EXPECT_EQ(j["stdout"], "hi");
  EXPECT_EQ(j["timed_out"], false);
  EXPECT_EQ(j["oom_killed"], false);
  EXPECT_EQ(j["truncated"], false);
  EXPECT_GT(j["peak_memory_bytes"].get<std::uint64_t>(), 0u);
  for (const char* key : {"signal", "stderr", "duration_ms"}) EXPECT_TRUE(j.contains(key)) << key;
}

TEST_F(SandboxCli, ShellKeepsStateAcrossLines) {
  const Outcome r = warren("sandbox shell --json", "cd /tmp\nexport X=5\npwd; echo $X\nexit 3\n");
  EXPECT_EQ(r.status, 3) << r.err;
  std::vector<nlohmann::json> results;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) results.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[2]["stdout"], "/tmp\n5\n");
  EXPECT_EQ(results[3]["exit_code"], 3);
}

TEST_F(SandboxCli, ShellSavesASnapshotThatExecStartsFrom) {
  const std::string dir = ::testing::TempDir() + "/warren_cli_snapshot_" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  const Outcome saved =
      warren("sandbox shell --save-snapshot " + dir, "echo prepared > /root/state\n");
  ASSERT_EQ(saved.status, 0) << saved.err;
  EXPECT_NE(saved.err.find("snapshot saved to " + dir), std::string::npos) << saved.err;
  const Outcome used = warren("sandbox exec --snapshot " + dir + " -- cat /root/state");
  EXPECT_EQ(used.status, 0) << used.err;
  EXPECT_EQ(used.out, "prepared\n");
  const Outcome again = warren("sandbox shell --save-snapshot " + dir, "true\n");
  EXPECT_EQ(again.status, 1) << "an existing snapshot was overwritten";
  std::filesystem::remove_all(dir);
}

TEST_F(SandboxCli, BenchReportsFiguresAsJson) {
  const Outcome r = warren("sandbox bench --runs 4 --concurrency 2 --idle 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["warren"]["start_latency_ms"]["p50"].get<double>(), 0.0);
  EXPECT_LE(j["warren"]["start_latency_ms"]["p50"].get<double>(),
            j["warren"]["start_latency_ms"]["p99"].get<double>());
  EXPECT_GT(j["warren"]["throughput_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["idle"]["sandboxes"], 2);
}

TEST_F(SandboxCli, BadFlagsAndImpossiblePoliciesExitTwo) {
  const Outcome size = warren("sandbox exec --memory lots -- true");
  EXPECT_EQ(size.status, 2);
  EXPECT_EQ(size.err, "warren sandbox exec: --memory: not a size: lots\n");
  EXPECT_EQ(warren("sandbox exec --net sometimes -- true").status, 2);
  const Outcome ws = warren("sandbox exec --workspace /nonexistent/x -- true");
  EXPECT_EQ(ws.status, 2);
  EXPECT_EQ(ws.err, "warren sandbox exec: --workspace /nonexistent/x is not a directory\n");
  EXPECT_EQ(warren("sandbox exec --mount /etc -- true").status, 2);
}

}  // namespace
