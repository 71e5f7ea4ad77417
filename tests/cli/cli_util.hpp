// Running the `warren` binary from tests, as users and scripts call it.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace warren::testing {

struct Outcome {
  int status;
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs the shell command line `command < input` and captures stdout, stderr and the exit status.
inline Outcome warren_via(const std::string& command, const std::string& input = "") {
  // ctest runs tests in parallel processes: the files are per process.
  const std::string base = ::testing::TempDir() + "/warren_cli_" + std::to_string(getpid());
  const std::string in = base + ".in", out = base + ".out", err = base + ".err";
  std::ofstream(in, std::ios::binary) << input;
  const std::string cmd = command + " < " + in + " > " + out + " 2> " + err;
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

// Runs `warren ARGS < input`.
inline Outcome warren(const std::string& args, const std::string& input = "") {
  return warren_via(std::string(WARREN_BINARY) + " " + args, input);
}

// A --script file for `warren run`: one completion per command, in the model's own format, each
// ended by its end-of-sentence token; "submit" submits.
inline std::string write_script(const std::filesystem::path& file,
                                const std::vector<std::string>& commands) {
  std::ofstream out(file);
  for (const std::string& c : commands)
    out << "Next step.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\""
        << (c == "submit" ? "submit" : "bash") << "\">\n"
        << (c == "submit" ? ""
                          : "<｜DSML｜parameter name=\"command\" string=\"true\">" + c +
                                "</｜DSML｜parameter>\n")
        << "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>\n";
  return file.string();
}

// A copy of warren and its helpers in `dir`, where an ordinary user can run it (the build folder
// may be below a private one).
inline void install_warren(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  for (const char* name : {"warren", "warren-full", "warren-spawner"})
    fs::copy_file(fs::path(WARREN_BINARY).parent_path() / name, dir / name,
                  fs::copy_options::overwrite_existing);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);
}

// An ordinary user (nobody, or any uid: setpriv needs no account) with a runtime folder of its own,
// where a rootless warren keeps Warren's own namespaces (sandbox::join_own_namespace): each test
// has its own, so that none ends another's, and the process that holds them (warren-pause) is ended
// when this goes.
class OrdinaryUser {
 public:
  explicit OrdinaryUser(unsigned uid = 65534)
      : uid_(uid),
        dir_(::testing::TempDir() + "/warren_runtime_" + std::to_string(getpid()) + "_" +
             std::to_string(next())) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    own(dir_);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all);
  }
  ~OrdinaryUser() {
    if (const pid_t pid = pause(); pid > 0) {
      kill(pid, SIGTERM);
      for (int i = 0; i < 200 && gone(pid) == false; ++i) usleep(10000);
    }
    std::filesystem::remove_all(dir_);
  }
  // `path` and all below it made this user's.
  void own(const std::filesystem::path& path) const {
    const std::string ids = std::to_string(uid_) + ":" + std::to_string(uid_);
    EXPECT_EQ(std::system(("chown -R " + ids + " " + path.string()).c_str()), 0);
  }
  // The start of a command line that runs what follows as this user, with this runtime folder.
  std::string as_user() const {
    const std::string id = std::to_string(uid_);
    return "setpriv --reuid=" + id + " --regid=" + id +
           " --clear-groups env XDG_RUNTIME_DIR=" + dir_ + " ";
  }
  // The process that holds Warren's own namespaces; 0 when none was started.
  pid_t pause() const {
    std::ifstream in(dir_ + "/warren/pause.pid");
    long pid = 0;
    return in >> pid ? static_cast<pid_t>(pid) : 0;
  }
  const std::string& dir() const { return dir_; }

 private:
  // Ended: no such process, or a zombie its new parent (init) has yet to reap.
  static bool gone(pid_t pid) {
    const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    const std::size_t end = stat.rfind(") ");
    return end == std::string::npos || stat[end + 2] == 'Z';
  }
  static int next() {
    static int n = 0;
    return ++n;
  }
  unsigned uid_;
  std::string dir_;
};

}  // namespace warren::testing
