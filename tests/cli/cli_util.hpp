// Running the `warren` binary from tests, as users and scripts call it.
#pragma once

#include <gtest/gtest.h>
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

}  // namespace warren::testing
