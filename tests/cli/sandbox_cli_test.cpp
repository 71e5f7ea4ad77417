// `warren sandbox exec` as users call it: exit statuses, --json, bad flags.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"

namespace {

using warren::testing::OrdinaryUser;
using warren::testing::Outcome;
using warren::testing::slurp;
using warren::testing::warren;
using warren::testing::warren_via;

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

// --env and --mount take one value each: the `--` and the command's own flags after them are the
// command's, not theirs.
TEST_F(SandboxCli, RepeatedEnvAndMountFlagsLeaveTheCommandAlone) {
  const Outcome r = warren(
      "sandbox exec --env A=1 --env B=2 --mount /etc/hostname:/mnt/h -- sh -c 'echo $A$B; "
      "cmp -s /mnt/h /etc/hostname && echo same'");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "12\nsame\n");
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

TEST_F(SandboxCli, ShellOnATerminalIsAnInteractiveBash) {
  // script(1) gives warren a terminal, as a person's would be.
  const Outcome r =
      warren_via("script -qec '" + std::string(WARREN_BINARY) + " sandbox shell' /dev/null",
                 "echo $((6*7)); test -t 0 && echo on-a-tty; echo $- | grep -c i\nexit 7\n");
  EXPECT_EQ(r.status, 7) << r.out << r.err;
  EXPECT_NE(r.out.find("\r\n42\r\non-a-tty\r\n1\r\n"), std::string::npos)
      << "not an interactive shell on a terminal: " << r.out;
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
  const Outcome r = warren(
      "sandbox bench --runs 4 --concurrency 2 --rounds 2 --compare-bwrap --compare-floor "
      "--idle 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  // Two rounds, each with its own figures; the reported ones are their medians (with two, the
  // mean of the pair).
  const auto& rounds = j["warren"]["rounds"];
  ASSERT_EQ(rounds.size(), 2u);
  EXPECT_DOUBLE_EQ(j["warren"]["start_latency_ms"]["p50"].get<double>(),
                   (rounds[0]["p50_ms"].get<double>() + rounds[1]["p50_ms"].get<double>()) / 2);
  EXPECT_DOUBLE_EQ(
      j["warren"]["throughput_per_s"].get<double>(),
      (rounds[0]["throughput_per_s"].get<double>() + rounds[1]["throughput_per_s"].get<double>()) /
          2);
  for (const auto& round : rounds)
    for (const char* share : {"idle_percent", "steal_percent"}) {
      EXPECT_GE(round[share].get<double>(), 0.0) << share;
      EXPECT_LE(round[share].get<double>(), 100.0) << share;
    }
  // bwrap alternates with warren, and with a new sandbox for every command ("fresh"); each
  // comparison is the median of the rounds' own ratios.
  const auto& bwrap = j["bwrap"]["rounds"];
  const auto& fresh = j["fresh"]["rounds"];
  ASSERT_EQ(bwrap.size(), 2u);
  ASSERT_EQ(fresh.size(), 2u);
  auto mean_ratio = [&](const nlohmann::json& ours) {
    double sum = 0;
    for (int i : {0, 1})
      sum += ours[i]["throughput_per_s"].get<double>() / bwrap[i]["throughput_per_s"].get<double>();
    return sum / 2;
  };
  EXPECT_DOUBLE_EQ(j["warren_vs_bwrap"]["throughput_times"].get<double>(), mean_ratio(rounds));
  EXPECT_DOUBLE_EQ(j["fresh_vs_bwrap"]["throughput_times"].get<double>(), mean_ratio(fresh));
  // The floor (no sandbox) the same way; its p50 ratio is the floor's p50 over warren's.
  const auto& floor = j["floor"]["rounds"];
  ASSERT_EQ(floor.size(), 2u);
  auto faster = [&](int i) {
    return floor[i]["p50_ms"].get<double>() / rounds[i]["p50_ms"].get<double>();
  };
  EXPECT_DOUBLE_EQ(j["warren_vs_floor"]["p50_times_faster"].get<double>(),
                   (faster(0) + faster(1)) / 2);
  EXPECT_GT(j["floor"]["start_latency_ms"]["p50"].get<double>(), 0.0);
  EXPECT_GT(j["warren"]["start_latency_ms"]["p50"].get<double>(), 0.0);
  EXPECT_LE(j["warren"]["start_latency_ms"]["p50"].get<double>(),
            j["warren"]["start_latency_ms"]["p99"].get<double>());
  EXPECT_GT(j["warren"]["throughput_per_s"].get<double>(), 0.0);
  // Four commands may fall within one clock tick of /proc/stat: zero is a possible reading.
  EXPECT_GE(j["warren"]["cpu_ms_per_command"].get<double>(), 0.0);
  EXPECT_EQ(j["idle"]["sandboxes"], 2);
  EXPECT_TRUE(j["idle"]["warren_sleep_mib_each"].is_number());
  EXPECT_TRUE(j["idle"]["warren_session_mib_each"].is_number());
}

// --one-shot times whole commands: each pair's warren is a `warren sandbox exec` process, which
// takes more than the bare start of its sandbox, and uses CPU of its own and its children's.
TEST_F(SandboxCli, OneShotBenchTimesWholeCommandsAgainstBwrap) {
  const Outcome r = warren("sandbox bench --one-shot 3 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["pairs"], 3);
  for (const char* tool : {"warren", "bwrap"}) {
    EXPECT_GT(j[tool]["wall_ms"].get<double>(), 0.5) << tool;
    EXPECT_GT(j[tool]["cpu_ms"].get<double>(), 0.0) << tool;
    EXPECT_LE(j[tool]["cpu_ms"].get<double>(), 4 * j[tool]["wall_ms"].get<double>()) << tool;
  }
  const Outcome bad = warren("sandbox bench --one-shot 0");
  EXPECT_EQ(bad.status, 2) << bad.err;
}

TEST_F(SandboxCli, RootlessRunsAndSaysWhichLimitsItCannotApply) {
  // An ordinary user (nobody) runs a copy of warren and its spawner from a directory it can reach.
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("warren_rootless_" + std::to_string(getpid()));
  fs::remove_all(dir);
  warren::testing::install_warren(dir);
  const OrdinaryUser nobody;
  const Outcome r = warren_via(
      "cd / && " + nobody.as_user() + (dir / "warren").string() +
      " sandbox exec --json -- sh -c 'id -u; cat /proc/self/uid_map; echo kept > /tmp/x; cat "
      "/tmp/x'");
  fs::remove_all(dir);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  const auto result = nlohmann::json::parse(r.out);
  // Root inside is the user's own id outside (65534), the only mapping an ordinary user may make.
  EXPECT_EQ(result["stdout"], "0\n         0      65534          1\nkept\n");
  ASSERT_EQ(result["notes"].size(), 1u);
  EXPECT_NE(result["notes"][0].get<std::string>().find("limits not applied (rootless"),
            std::string::npos)
      << result["notes"];
}

TEST_F(SandboxCli, BadFlagsAndImpossiblePoliciesExitTwo) {
  const Outcome size = warren("sandbox exec --memory lots -- true");
  EXPECT_EQ(size.status, 2);
  EXPECT_EQ(size.err, "warren sandbox exec: --memory: not a size: lots\n");
  const Outcome net = warren("sandbox exec --net sometimes -- true");
  EXPECT_EQ(net.status, 2);
  EXPECT_NE(net.err.find("--net: sometimes not in {none,outbound,host}"), std::string::npos)
      << net.err;
  const Outcome ws = warren("sandbox exec --workspace /nonexistent/x -- true");
  EXPECT_EQ(ws.status, 2);
  EXPECT_EQ(ws.err, "warren sandbox exec: --workspace /nonexistent/x is not a directory\n");
  EXPECT_EQ(warren("sandbox exec --mount /etc -- true").status, 2);
}

TEST_F(SandboxCli, WarrenRunsTheSandboxCommandsAloneAndHandsTheRestToWarrenFull) {
  // `warren` alone in a folder: its own commands run; any other names the helper it needs.
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("warren_alone_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(WARREN_BINARY, dir / "warren");
  const std::string alone = (dir / "warren").string();
  const Outcome own = warren_via(alone + " sandbox exec -- sh -c 'echo inside'");
  const Outcome other = warren_via(alone + " toolcall --help");
  // With warren-full beside it, the same command line is answered by warren-full.
  fs::copy_file(fs::path(WARREN_BINARY).parent_path() / "warren-full", dir / "warren-full");
  const Outcome handed = warren_via(alone + " toolcall --help");
  const Outcome version = warren_via(alone + " --version");
  fs::remove_all(dir);
  EXPECT_EQ(own.status, 0) << own.err;
  EXPECT_EQ(own.out, "inside\n");
  EXPECT_EQ(other.status, 127);
  EXPECT_EQ(other.out, "");
  EXPECT_EQ(other.err, "warren: cannot run " + (dir / "warren-full").string() +
                           ": No such file or directory (keep warren-full beside warren)\n");
  EXPECT_EQ(handed.status, 0) << handed.err;
  EXPECT_NE(handed.out.find("DSML"), std::string::npos) << handed.out;
  EXPECT_EQ(version.out, "0.1.0\n");
}

// `--workspace DIR` as root: the command works on an overlay over DIR bounded by --disk, and what
// it changed is written into DIR when it ends, owned by DIR's owner, with no set-id bit, never
// through a link, and DIR's path shows nowhere inside.
TEST_F(SandboxCli, AWorkspaceFolderIsBoundedAndGetsTheChangesWhenTheCommandEnds) {
  namespace fs = std::filesystem;
  const fs::path base =
      fs::path(::testing::TempDir()) / ("warren_folder_" + std::to_string(getpid()));
  fs::remove_all(base);
  const fs::path dir = base / "project", victim = base / "victim";
  fs::create_directories(dir / "gone");
  fs::create_directories(dir / "old");
  fs::create_directories(victim);
  std::ofstream(dir / "a") << "before\n";
  std::ofstream(dir / "gone" / "x") << "x\n";
  std::ofstream(dir / "old" / "stale") << "stale\n";
  std::ofstream(dir / "kept") << "kept\n";
  fs::create_directory_symlink(victim, dir / "link");
  const std::string script =
      "echo after > a && rm -r gone && mkdir -p new/deep && echo n > new/deep/f && "
      "rm -r old && mkdir old && echo fresh > old/only && rm link && mkdir link && "
      "echo inside > link/planted && cp /bin/sh s && chmod 4755 s && stat -c %a s && "
      "truncate -s 1G sparse && ln sparse hard && "
      "(head -c 20M /dev/zero > big; echo big=$?) && grep -c project /proc/self/mountinfo";
  const Outcome r =
      warren("sandbox exec --disk 8M --workspace " + dir.string() + " -- sh -c '" + script + "'");
  EXPECT_EQ(r.out, "4755\nbig=1\n0\n") << r.err;  // set-uid inside; ENOSPC; no host path
  EXPECT_EQ(r.status, 1) << r.err;                // grep -c found nothing
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("warren sandbox: the workspace is full (--disk)"), std::string::npos)
      << r.err;
  EXPECT_EQ(slurp((dir / "a").string()), "after\n");
  EXPECT_EQ(slurp((dir / "kept").string()), "kept\n");
  EXPECT_FALSE(fs::exists(dir / "gone"));
  EXPECT_EQ(slurp((dir / "new" / "deep" / "f").string()), "n\n");
  EXPECT_FALSE(fs::exists(dir / "old" / "stale"));  // an opaque directory: only what it holds now
  EXPECT_EQ(slurp((dir / "old" / "only").string()), "fresh\n");
  // The link was replaced by a directory, never written through.
  EXPECT_FALSE(fs::is_symlink(dir / "link"));
  EXPECT_EQ(slurp((dir / "link" / "planted").string()), "inside\n");
  EXPECT_TRUE(fs::is_empty(victim));
  struct stat s {
  }, sparse{}, hard{}, big{};
  ASSERT_EQ(stat((dir / "s").c_str(), &s), 0);
  EXPECT_EQ(s.st_mode & 07777, 0755u);  // no set-id bit on the host
  EXPECT_EQ(s.st_uid, 0u);              // the folder's owner
  ASSERT_EQ(stat((dir / "sparse").c_str(), &sparse), 0);
  ASSERT_EQ(stat((dir / "hard").c_str(), &hard), 0);
  EXPECT_EQ(sparse.st_size, 1 << 30);
  EXPECT_LT(sparse.st_blocks, 64);  // still a hole
  EXPECT_EQ(sparse.st_ino, hard.st_ino);
  // What the command wrote is bounded by --disk on the host too.
  ASSERT_EQ(stat((dir / "big").c_str(), &big), 0);
  EXPECT_LE(big.st_size, 8 << 20);
  // Nothing is left mounted of the overlay: a folder there is named after its process, and only
  // those of processes still running (another test's, at the same time) may be mounted.
  const std::string mounts = slurp("/proc/self/mountinfo");
  for (std::size_t at = mounts.find("/run/warren/folders/"); at != std::string::npos;
       at = mounts.find("/run/warren/folders/", at + 1)) {
    const long pid = std::strtol(mounts.c_str() + at + 20, nullptr, 10);
    EXPECT_EQ(kill(static_cast<pid_t>(pid), 0), 0)
        << "a folder of process " << pid << ", which has ended, is still mounted";
  }
  fs::remove_all(base);
}

TEST_F(SandboxCli, AShellOnAWorkspaceFolderWritesItsChangesBackWhenInputEnds) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("warren_shell_folder_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const Outcome r = warren("sandbox shell --workspace " + dir.string(),
                           "echo one > f\nsleep 0.1 &\necho two >> f\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(slurp((dir / "f").string()), "one\ntwo\n");
  fs::remove_all(dir);
}

// A copy of warren where nobody can run it, in `dir`, and the folder `dir`/work that nobody owns.
void prepare_for_nobody(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  warren::testing::install_warren(dir);
  fs::create_directories(dir / "work");
  ASSERT_EQ(std::system(("chown nobody:nogroup " + (dir / "work").string()).c_str()), 0);
}

// Mount points whose path holds `part`, in the mount table `mountinfo`.
std::vector<std::string> mounts_at(const std::string& mountinfo, const std::string& part) {
  std::vector<std::string> found;
  std::istringstream lines(slurp(mountinfo));
  for (std::string line; std::getline(lines, line);)
    if (line.find(part) != std::string::npos) found.push_back(line);
  return found;
}

// Rootless, the overlay is mounted in Warren's own namespaces, which a process of the user's holds
// between commands: the folder is bounded as root's is, and the host's mount table never shows it.
TEST_F(SandboxCli, ARootlessWorkspaceFolderIsBoundedInWarrensOwnNamespaces) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("warren_rootless_folder_" + std::to_string(getpid()));
  prepare_for_nobody(dir);
  const OrdinaryUser nobody;
  fs::create_directories(dir / "work" / "d");
  std::ofstream(dir / "work" / "d" / "old") << "old\n";
  ASSERT_EQ(std::system(("chown -R nobody:nogroup " + (dir / "work").string()).c_str()), 0);
  const std::string exec = "cd / && " + nobody.as_user() + (dir / "warren").string() +
                           " sandbox exec --json --disk 8M --workspace " + (dir / "work").string();
  // A folder made anew where one was deleted is opaque (user.overlay.opaque rootless): only what
  // is in it now is written back.
  const Outcome r = warren_via(exec +
                               " -- sh -c 'rm -r d && mkdir d && echo new > d/new && echo made > f "
                               "&& head -c 20000000 /dev/zero > big'");
  const std::string made = slurp((dir / "work" / "f").string());
  EXPECT_FALSE(fs::exists(dir / "work" / "d" / "old"));
  EXPECT_EQ(slurp((dir / "work" / "d" / "new").string()), "new\n");
  const auto big = fs::file_size(dir / "work" / "big");
  const pid_t pause = nobody.pause();
  // The second command joins the same namespaces.
  const Outcome again = warren_via(exec + " -- cat f");
  const auto host_mounts = mounts_at("/proc/self/mountinfo", dir.string());
  const auto left = mounts_at("/proc/" + std::to_string(pause) + "/mountinfo", "/folders/");
  fs::remove_all(dir);
  ASSERT_EQ(r.status, 1) << r.err << r.out;  // head's, on ENOSPC
  EXPECT_EQ(made, "made\n");
  EXPECT_LE(big, 8u << 20);
  EXPECT_GT(big, 4u << 20);
  const auto notes = nlohmann::json::parse(r.out)["notes"];
  EXPECT_NE(notes.dump().find("the workspace is full (--disk)"), std::string::npos) << notes;
  EXPECT_EQ(notes.dump().find("not bounded"), std::string::npos) << notes;
  ASSERT_GT(pause, 0);
  EXPECT_TRUE(slurp("/proc/" + std::to_string(pause) + "/cmdline").starts_with("warren-pause"));
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out)["stdout"], "made\n");
  EXPECT_EQ(nobody.pause(), pause);
  EXPECT_TRUE(host_mounts.empty()) << host_mounts.front();
  EXPECT_TRUE(left.empty()) << left.front();  // each command's overlay is gone with it
}

// Where Warren's own namespaces cannot be made (here: the runtime folder is another user's), the
// folder is bound as it is, and the note says that what commands write there is not bounded.
TEST_F(SandboxCli, WithoutItsOwnNamespacesARootlessWorkspaceFolderIsBoundAsItIsAndSaysSo) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("warren_rootless_plain_" + std::to_string(getpid()));
  prepare_for_nobody(dir);
  const OrdinaryUser nobody;
  fs::create_directories(nobody.dir() + "/warren");  // root's
  const Outcome r = warren_via("cd / && " + nobody.as_user() + (dir / "warren").string() +
                               " sandbox exec --json --workspace " + (dir / "work").string() +
                               " -- sh -c 'echo made > f'");
  const std::string made = slurp((dir / "work" / "f").string());
  fs::remove_all(dir);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_EQ(made, "made\n");
  EXPECT_EQ(nobody.pause(), 0);
  const auto notes = nlohmann::json::parse(r.out)["notes"];
  EXPECT_NE(notes.dump().find("itself: what commands write there is not bounded (rootless, "
                              "outside Warren's own namespaces"),
            std::string::npos)
      << notes;
}

}  // namespace
