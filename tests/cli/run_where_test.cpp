// `warren run` where its users run it: from inside the repository, whose folder may hold Warren's
// own state; in private (0700) folders, as root and as an ordinary user; two databases in one
// folder at once. What the workspace starts with is read back from the patch: the agent writes
// what it sees into a file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../sandbox/host_probe.hpp"
#include "cli_util.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// What the agent records of its workspace: every entry but .git's insides, and the link.
constexpr const char* kLook =
    "{ find . -path ./.git -prune -print -o -print | sort; readlink link; } > seen.txt";

class RunWhere : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    base = fs::temp_directory_path() / ("warren-run-where-" + std::to_string(getpid()));
    (void)sandbox::remove_workspace(base.string());
    fs::create_directories(base);
    fs::permissions(base, fs::perms::owner_all);  // private, as /root is on Debian
    repo = base / "myrepo";
    fs::create_directories(repo / "build");
    std::ofstream(repo / "greet.sh") << "echo helo\n";
    std::ofstream(repo / "README") << "old\n";
    std::ofstream(repo / ".gitignore") << "build/\n";
    fs::create_symlink("greet.sh", repo / "link");
    git("init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm one");
    std::ofstream(repo / "README") << "changed, not committed\n";
    std::ofstream(repo / "notes.txt") << "untracked\n";
    std::ofstream(repo / "build" / "out.o") << "ignored\n";
  }
  void TearDown() override { (void)sandbox::remove_workspace(base.string()); }

  void git(const std::string& args) {
    ASSERT_EQ(std::system(("cd " + repo.string() + " && git " + args).c_str()), 0) << args;
  }
  std::string status() {
    return warren_via("cd " + repo.string() + " && git status --porcelain --ignored").out;
  }
  // The contents the patch gives the new file seen.txt.
  static std::string seen(const std::string& patch) {
    const std::size_t at = patch.find("+++ b/seen.txt");
    std::string lines;
    for (std::size_t line = patch.find("\n+", patch.find("@@", at)); line != std::string::npos;
         line = patch.find("\n+", line + 1))
      lines += patch.substr(line + 2, patch.find('\n', line + 1) - line - 2) + "\n";
    return lines;
  }

  fs::path base, repo;
};

TEST_F(RunWhere, TheCurrentFolderIsTheRepositoryAndHoldsTheDatabase) {
  const std::string before = status();
  const std::string s =
      write_script(base / "s.txt", {"sed -i s/helo/hello/ greet.sh", kLook, "submit"});
  // The default database, .warren/warren.db, lands inside the repository.
  auto r =
      warren_via("cd " + repo.string() + " && " + WARREN_BINARY +
                 " run --repo . --task 'fix the typo' --script " + s + " --patch-out ../p.diff");
  ASSERT_EQ(r.status, 0) << r.err;
  // As root, at once: an overlay over the repository (a copy, rootless).
  EXPECT_NE(r.err.find("an overlay over . (the working tree as git lists it) in "),
            std::string::npos)
      << r.err;
  const std::string patch = slurp((base / "p.diff").string());
  // Tracked and untracked files, the history, the link as a link; not what git ignores, not
  // Warren's state.
  EXPECT_EQ(seen(patch),
            ".\n./.git\n./.gitignore\n./README\n./greet.sh\n./link\n./notes.txt\n"
            "./seen.txt\ngreet.sh\n");
  EXPECT_NE(patch.find("-echo helo\n+echo hello\n"), std::string::npos) << patch;
  EXPECT_EQ(patch.find("a/README"), std::string::npos) << patch;  // the start is the working tree
  // The repository is as it was (its index included), and the finished run's copy is gone.
  EXPECT_EQ(slurp((repo / "greet.sh").string()), "echo helo\n");
  EXPECT_EQ(before, " M README\n?? notes.txt\n!! build/\n");
  EXPECT_EQ(status(), " M README\n?? .warren/\n?? notes.txt\n!! build/\n");
  EXPECT_TRUE(fs::is_empty(repo / ".warren" / "workspaces" / "warren.db"));
  auto again = warren_via("cd " + repo.string() + " && " + WARREN_BINARY + " runs list --json");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(Json::parse(again.out)[0]["status"], "finished");
  EXPECT_EQ(Json::parse(again.out)[0]["name"], repo.string());  // `--repo .`, named in full
}

TEST_F(RunWhere, CopyAllTakesIgnoredFilesButNeverTheStateOfADatabaseBelow) {
  const std::string s = write_script(base / "s.txt", {kLook, "rm notes.txt", "submit"});
  const std::string db = (repo / "build" / "state" / "x.db").string();
  auto r = warren("run --repo " + repo.string() + " --copy all --keep-workspace --json --db " + db +
                  " --task look --script " + s);
  ASSERT_EQ(r.status, 0) << r.err;
  const Json out = Json::parse(r.out);
  // The database's folder shows, with nothing in it.
  EXPECT_EQ(seen(out["patch"]),
            ".\n./.git\n./.gitignore\n./README\n./build\n./build/out.o\n"
            "./build/state\n./greet.sh\n./link\n./notes.txt\n./seen.txt\n"
            "greet.sh\n");
  // Kept, as asked: an overlay over the repository, whose writable layer is a filesystem of its
  // own of --disk's 4 GiB.
  const std::string workspace = out["workspace"];
  EXPECT_EQ(workspace, (repo / "build" / "state" / "workspaces" / "x.db" / "trial-1").string());
  struct statfs st {};
  ASSERT_EQ(::statfs(workspace.c_str(), &st), 0);
  EXPECT_EQ(st.f_type, 0x794c7630);  // OVERLAYFS_SUPER_MAGIC
  ASSERT_EQ(::statfs(sandbox::workspace_layers(workspace).c_str(), &st), 0);
  EXPECT_EQ(st.f_type, 0x01021994);  // TMPFS_MAGIC
  EXPECT_EQ(static_cast<double>(st.f_blocks) * static_cast<double>(st.f_bsize), 4.0 * (1u << 30));
  EXPECT_TRUE(fs::exists(repo / "notes.txt"));  // removed in the workspace only
  EXPECT_EQ(slurp(workspace + "/build/out.o"), "ignored\n");
}

TEST_F(RunWhere, TwoDatabasesInOneFolderAtOnce) {
  const std::string a = write_script(base / "a.txt", {"sleep 1; echo a > mine", "submit"});
  const std::string b = write_script(base / "b.txt", {"sleep 1; echo b > mine", "submit"});
  const std::string run = std::string(WARREN_BINARY) + " run --repo " + repo.string() +
                          " --task t --keep-workspace --json";
  auto r = warren_via("cd " + base.string() + " && { " + run + " --db a.db --script " + a +
                      " > a.json & " + run + " --db b.db --script " + b +
                      " > b.json; wait $!; } && wait");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* name : {"a", "b"}) {
    const Json out = Json::parse(slurp((base / (std::string(name) + ".json")).string()));
    EXPECT_EQ(out["exit_status"], "submitted") << name;
    EXPECT_NE(out["patch"].get<std::string>().find("+" + std::string(name) + "\n"),
              std::string::npos)
        << out["patch"];
    EXPECT_EQ(
        slurp((base / "workspaces" / (std::string(name) + ".db") / "trial-1" / "mine").string()),
        std::string(name) + "\n");
  }
}

// An ordinary user's private folder: the repository and the database in it, no privileges. The
// workspace is an overlay as root's is, mounted in Warren's own namespaces: the host's folder stays
// empty, and the next command of the user's finds the workspace kept there.
TEST_F(RunWhere, AnOrdinaryUsersPrivateFolder) {
  const fs::path tools = base / "tools";  // warren where nobody can run it
  install_warren(tools);
  const fs::path home = base / "home";
  fs::create_directories(home);
  fs::rename(repo, home / "myrepo");
  const std::string s =
      write_script(home / "s.txt", {"sed -i s/helo/hello/ greet.sh", kLook, "submit"});
  ASSERT_EQ(std::system(("chown -R nobody:nogroup " + home.string() + " && chmod 0700 " +
                         home.string() + " && chmod 0711 " + base.string())
                            .c_str()),
            0);
  const OrdinaryUser nobody;
  const std::string as_nobody =
      "cd " + (home / "myrepo").string() + " && HOME=" + home.string() + " " + nobody.as_user();
  auto r = warren_via(as_nobody + (tools / "warren").string() +
                      " run --repo . --task t --keep-workspace --script " + s);
  ASSERT_EQ(r.status, 0) << r.err << r.out;
  EXPECT_NE(r.err.find("an overlay over . (the working tree as git lists it) in "),
            std::string::npos)
      << r.err;
  const std::string patch = r.out;
  EXPECT_EQ(seen(patch),
            ".\n./.git\n./.gitignore\n./README\n./greet.sh\n./link\n"
            "./notes.txt\n./seen.txt\ngreet.sh\n");
  EXPECT_NE(patch.find("+echo hello\n"), std::string::npos);
  EXPECT_EQ(slurp((home / "myrepo" / "greet.sh").string()), "echo helo\n");

  const fs::path workspace = home / "myrepo" / ".warren" / "workspaces" / "warren.db" / "trial-1";
  EXPECT_TRUE(fs::is_empty(workspace));  // on the host, a mount point only
  const std::string mounts = slurp("/proc/" + std::to_string(nobody.pause()) + "/mountinfo");
  EXPECT_NE(mounts.find(" " + workspace.string() + " rw,nosuid,nodev"), std::string::npos)
      << mounts;
  EXPECT_NE(mounts.find(" " + sandbox::workspace_layers(workspace.string()) +
                        " rw,nosuid,nodev,relatime - tmpfs warren-workspace rw,size=4194304k"),
            std::string::npos)
      << mounts;
  auto kept = warren_via(as_nobody + (tools / "warren").string() + " sandbox exec --workspace " +
                         workspace.string() + " -- cat greet.sh");
  EXPECT_EQ(kept.status, 0) << kept.err;
  EXPECT_EQ(kept.out, "echo hello\n");
}

}  // namespace
}  // namespace warren::testing
