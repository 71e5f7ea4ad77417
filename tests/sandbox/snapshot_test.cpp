// Snapshots: a prepared session's writable layer and workspace, copied to the host, and any
// number of independent sandboxes started from it. Needs root, like the rest of the suite.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "host_probe.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {
namespace {

namespace fs = std::filesystem;
using testing::kernel_at_least;
using testing::sh;
using testing::slurp;

class Snapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-snapshot-test-" + std::to_string(getpid()));
    fs::remove_all(base);
    fs::create_directories(base / "workspace");
    fs::permissions(base / "workspace", fs::perms::all);
    std::ofstream(base / "workspace" / "README") << "from the host\n";
  }
  void TearDown() override { (void)remove_workspace(base.string()); }

  std::unique_ptr<Session> start(const Policy& policy) {
    auto s = Session::start(runtime, policy);
    if (!s) throw std::runtime_error(s.error().message);
    return std::move(*s);
  }

  // A session prepared the way an agent's environment is: files in its writable layer and in its
  // workspace, then snapshotted.
  fs::path prepare() {
    Policy policy;
    policy.workspace = base / "workspace";
    auto s = start(policy);
    sh(*s,
       "echo installed > /root/tool.txt && mkdir -p /opt2/lib /var/cache/app && "
       "echo cached > /var/cache/app/data && ln -s /root/tool.txt /root/link && "
       "printf '#!/bin/sh\\necho run\\n' > /root/run.sh && chmod 755 /root/run.sh && "
       "echo x > /root/setuid && chmod 4755 /root/setuid && echo gone > /root/deleted && "
       "echo work > /workspace/notes.txt");
    const fs::path snapshot = base / "snap";
    auto saved = s->snapshot(snapshot);
    if (!saved) throw std::runtime_error(saved.error().message);
    return snapshot;
  }

  Runtime runtime;
  fs::path base;
};

TEST_F(Snapshot, CopiesTheWritableLayerAndWorkspaceWithOwnersAndModes) {
  const fs::path snap = prepare();
  const fs::path root = snap / "root";
  EXPECT_EQ(slurp(root / "root/tool.txt"), "installed\n");
  EXPECT_EQ(slurp(root / "var/cache/app/data"), "cached\n");
  EXPECT_EQ(fs::read_symlink(root / "root/link"), "/root/tool.txt");
  struct stat st {};
  ASSERT_EQ(stat((root / "root/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 100000u) << "owners are the sandbox's host ids";
  ASSERT_EQ(stat((root / "root/setuid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07000, 0u) << "a set-id bit reached the host";
  // Mount points (the read-only system, /proc, /dev) are empty directories in the copy.
  EXPECT_TRUE(fs::is_empty(root / "usr"));
  EXPECT_TRUE(fs::is_empty(root / "proc"));
  EXPECT_FALSE(fs::exists(root / "workspace/README")) << "the workspace belongs in workspace/";
  EXPECT_EQ(slurp(snap / "workspace/README"), "from the host\n");
  EXPECT_EQ(slurp(snap / "workspace/notes.txt"), "work\n");

  auto again = Session::start(runtime, Policy{});
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE((*again)->snapshot(snap).has_value()) << "an existing directory was overwritten";
}

TEST_F(Snapshot, AttemptsFromOneSnapshotAreIndependent) {
  const fs::path snap = prepare();
  Policy from;
  from.snapshot = snap;
  std::vector<std::unique_ptr<Session>> attempts;
  for (int i = 0; i < 3; ++i) attempts.push_back(start(from));
  for (int i = 0; i < 3; ++i) {
    Session& s = *attempts[i];
    EXPECT_EQ(sh(s, "pwd; cat /root/tool.txt notes.txt; /root/run.sh"),
              "/workspace\ninstalled\nwork\nrun\n");
    sh(s, "echo attempt" + std::to_string(i) + " >> notes.txt && rm /root/tool.txt");
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sh(*attempts[i], "cat notes.txt; ls /root/tool.txt 2>&1 | grep -c 'No such'"),
              "work\nattempt" + std::to_string(i) + "\n1\n");
  }
  // The snapshot itself never changes.
  EXPECT_EQ(slurp(snap / "workspace/notes.txt"), "work\n");
  EXPECT_EQ(slurp(snap / "root/root/tool.txt"), "installed\n");
}

TEST_F(Snapshot, ASnapshotOfAnAttemptKeepsItsChangesAndDeletions) {
  const fs::path first = prepare();
  Policy from;
  from.snapshot = first;
  auto s = start(from);
  sh(*s, "rm /root/deleted && echo second > /root/added && echo more >> notes.txt");
  const fs::path second = base / "snap2";
  ASSERT_TRUE(s->snapshot(second).has_value());
  EXPECT_FALSE(fs::exists(second / "root/root/deleted"));
  EXPECT_EQ(slurp(second / "root/root/added"), "second\n");
  EXPECT_EQ(slurp(second / "root/root/tool.txt"), "installed\n");
  EXPECT_EQ(slurp(second / "workspace/notes.txt"), "work\nmore\n");
}

TEST_F(Snapshot, ADirectoryThatIsNotASnapshotIsAnError) {
  Policy from;
  from.snapshot = base / "workspace";  // exists, but has no root/
  auto r = runtime.run(from, Command{{"true"}, std::nullopt});
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("is not a snapshot"), std::string::npos) << r.error().message;
}

// A task's WORKDIR: the workspace mounted elsewhere than /workspace, parents made, and kept by a
// snapshot.
TEST_F(Snapshot, TheWorkspaceCanLiveAtATasksWorkdir) {
  Policy policy;
  policy.workspace = base / "workspace";
  policy.workspace_path = "/home/agent/app";
  auto s = start(policy);
  EXPECT_EQ(sh(*s, "pwd; cat README; echo made > new.txt; ls -d /workspace 2>&1 | head -c 0"),
            "/home/agent/app\nfrom the host\n");
  EXPECT_EQ(slurp(base / "workspace" / "new.txt"), "made\n");
  auto read = s->read_file("new.txt");
  ASSERT_TRUE(read.has_value()) << read.error().message;
  EXPECT_EQ(*read, "made\n");
  ASSERT_TRUE(s->snapshot(base / "snap").has_value());
  EXPECT_EQ(slurp(base / "snap" / "workspace" / "new.txt"), "made\n");

  Policy from;
  from.snapshot = base / "snap";
  from.workspace_path = "/home/agent/app";
  auto attempt = start(from);
  EXPECT_EQ(sh(*attempt, "pwd; cat new.txt"), "/home/agent/app\nmade\n");

  for (const char* bad : {"/usr/app", "relative", "/", "/a/../b", "/proc/x"}) {
    Policy wrong = policy;
    wrong.workspace_path = bad;
    auto r = runtime.run(wrong, Command{{"true"}, std::nullopt});
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_NE(r.error().message.find("workspace path"), std::string::npos) << r.error().message;
  }
}

// A host directory copied to be a workspace: the sandbox's root owns what host root owned (and
// can write it, where it could not write the host's files), links are copied as links.
TEST_F(Snapshot, ACopiedWorkspaceBelongsToTheSandboxUsers) {
  const fs::path repo = base / "repo";
  fs::create_directories(repo / "src");
  std::ofstream(repo / "src" / "main.c") << "int main() { return 0; }\n";
  fs::permissions(repo / "src" / "main.c", fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(repo / "tool") << "#!/bin/sh\n";
  ::chmod((repo / "tool").c_str(), 04755);
  ::chown((repo / "tool").c_str(), 1000, 1000);
  fs::create_symlink("/etc/passwd", repo / "escape");
  const fs::path copy = base / "copy";

  ASSERT_TRUE(copy_workspace(repo, copy).has_value());
  struct stat st {};
  ASSERT_EQ(::lstat((copy / "src" / "main.c").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::lstat((copy / "tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 101000u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // set-id dropped
  ASSERT_EQ(::lstat(copy.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 100000u);
  EXPECT_EQ(fs::read_symlink(copy / "escape"), "/etc/passwd");

  Policy policy;
  policy.workspace = copy;
  auto r = runtime.run(policy, Command{{"sh", "-c",
                                        "echo 'int x;' >> src/main.c && stat -c %u src/main.c "
                                        "tool && touch new"},
                                       std::nullopt});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->exit_code, 0) << r->stderr_data;
  EXPECT_EQ(r->stdout_data, "0\n1000\n");
  EXPECT_EQ(slurp(copy / "src" / "main.c"), "int main() { return 0; }\nint x;\n");
  EXPECT_EQ(slurp(repo / "src" / "main.c"),
            "int main() { return 0; }\n");  // the source is untouched

  EXPECT_FALSE(copy_workspace(repo, copy).has_value());  // exists already
  fs::create_directories(base / "private");
  fs::permissions(base / "private", fs::perms::owner_all);
  // Below a folder only host root may enter (a 0700 home): the sandbox is given the workspace by
  // descriptor, and never needs to walk the host's path down to it.
  const fs::path hidden = base / "private" / "copy";
  ASSERT_TRUE(copy_workspace(repo, hidden).has_value());
  policy.workspace = hidden;
  auto inside =
      runtime.run(policy, Command{{"sh", "-c", "echo ok > new && cat src/main.c"}, std::nullopt});
  ASSERT_TRUE(inside.has_value()) << inside.error().message;
  EXPECT_EQ(inside->exit_code, 0) << inside->stderr_data;
  EXPECT_EQ(inside->stdout_data, "int main() { return 0; }\n");
  EXPECT_EQ(slurp(hidden / "new"), "ok\n");
  Runtime::Options options;  // PID 1 forked from this process, not from warren-spawner
  options.spawner = false;
  options.recycle = 0;
  Runtime own(options);
  auto forked = own.run(policy, Command{{"cat", "new"}, std::nullopt});
  ASSERT_TRUE(forked.has_value()) << forked.error().message;
  EXPECT_EQ(forked->stdout_data, "ok\n") << forked->stderr_data;
  auto missing = copy_workspace(base / "nowhere", base / "copy2");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find("workspace: opening"), std::string::npos);
}

// A workspace over a folder: the sandbox owns what it sees, writes only the bounded upper layer,
// never the folder, and sees nothing of what is hidden.
// The folder is a tmpfs of its own, so the test does not depend on what filesystem holds /tmp
// (in scripts/cgroup2-vm.sh's guests, an overlay over 9p, which takes no idmapped mounts).
TEST_F(Snapshot, AnOverlayWorkspaceNeverWritesItsFolder) {
  const fs::path repo = base / "repo";
  fs::create_directories(repo);
  ASSERT_EQ(::mount("repo", repo.c_str(), "tmpfs", 0, "size=16m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string at;
    ~Unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } unmount{repo.string()};
  fs::create_directories(repo / "src");
  fs::create_directories(repo / "build");
  std::ofstream(repo / "src" / "main.c") << "int main;\n";
  fs::permissions(repo / "src" / "main.c", fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(repo / "build" / "secret.o") << "hidden\n";
  std::ofstream(repo / "src" / "state.db") << "hidden too\n";
  std::ofstream(repo / "build-cache") << "hidden\n";  // sorts between build and build/...
  std::ofstream(repo / "build-notes") << "shown\n";
  auto ids = IdRange::take();
  ASSERT_TRUE(ids.has_value());
  const fs::path ws = base / "ws";
  auto made =
      overlay_workspace({repo.string()}, {"build/secret.o", "build", "build-cache", "src/state.db"},
                        ws.string(), ids->base(), WorkspaceLimits{.bytes = 8 << 20});
  if (!kernel_at_least(6, 3)) {
    // tmpfs takes idmapped mounts from Linux 6.3: before, the overlay is refused, saying why, and
    // leaves nothing behind, so that `warren run` copies the repository instead.
    ASSERT_FALSE(made.has_value());
    EXPECT_NE(made.error().message.find("has no idmapped mounts"), std::string::npos)
        << made.error().message;
    EXPECT_FALSE(fs::exists(ws));
    EXPECT_FALSE(fs::exists(workspace_layers(ws.string())));
    EXPECT_EQ(slurp("/proc/self/mountinfo").find(ws.string()), std::string::npos);
    return;
  }
  ASSERT_TRUE(made.has_value()) << made.error().message;
  Policy policy;
  policy.workspace = ws;
  policy.host_ids = ids->base();
  auto r = runtime.run(
      policy, Command{{"sh", "-c",
                       "stat -c '%u %a' src/main.c; ls -A; ls src; echo more >> src/main.c; "
                       "rm -r src; mkdir new && echo x > new/f; "
                       "dd if=/dev/zero of=big bs=1M count=16 2>&1 | grep -o 'No space left'"},
                      std::nullopt});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->stdout_data, "0 600\nbuild-notes\nsrc\nmain.c\nNo space left\n") << r->stderr_data;
  // The folder is as it was; the workspace has the changes, owned by the sandbox's range.
  EXPECT_EQ(slurp(repo / "src" / "main.c"), "int main;\n");
  EXPECT_TRUE(fs::exists(repo / "build" / "secret.o"));
  EXPECT_FALSE(fs::exists(ws / "src"));
  EXPECT_EQ(slurp(ws / "new" / "f"), "x\n");
  struct stat st {};
  ASSERT_EQ(::stat((ws / "new" / "f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, ids->base());
  // Removed, nothing of it is mounted any more.
  ASSERT_TRUE(remove_workspace(ws.string()).has_value());
  EXPECT_FALSE(fs::exists(ws));
  EXPECT_FALSE(fs::exists(workspace_layers(ws.string())));
  EXPECT_EQ(slurp("/proc/self/mountinfo").find(ws.string()), std::string::npos);
}

}  // namespace
}  // namespace warren::sandbox
