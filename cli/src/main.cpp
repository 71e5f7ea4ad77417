// warren: agent sandbox and tool-calling orchestration for DeepSeek-V4 models.
//
// Built twice (cli/CMakeLists.txt). `warren-full` has every command. `warren` (WARREN_FRONT) has
// the sandbox commands only and hands every other command line to the warren-full beside it:
// `warren sandbox exec`, the one-shot command scripts call, then loads, relocates and initialises
// 4 MB instead of 18 MB (no OpenSSL, SQLite or engine), which took it from about bwrap's time to
// 10 to 14% under it (docs/benchmarks.md). The other commands run for seconds to hours; one more
// exec costs them about a millisecond.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "sandbox_commands.hpp"
#include "warren/sandbox/sandbox.hpp"
#ifndef WARREN_FRONT
#include "run_commands.hpp"
#include "toolcall_commands.hpp"
#endif

namespace {

constexpr const char* kVersion = "0.1.0";

// The top-level commands, by the function that adds each group's command tree. `workspaces`: its
// commands mount workspaces, which a rootless process does in Warren's own namespaces, joined
// before anything else (sandbox::join_own_namespace: no thread may run yet). Image builds stay
// outside them: rootless buildah maps the user's subordinate ids, which they do not have.
struct CommandGroup {
  const char* names[2];
  void (*add)(CLI::App&, int&);
  bool workspaces = false;
};
#ifdef WARREN_FRONT
constexpr CommandGroup kCommandGroups[] = {
    {{"sandbox"}, warren::cli::add_sandbox_commands, true},
};
#else
constexpr CommandGroup kCommandGroups[] = {
    {{"toolcall"}, warren::cli::add_toolcall_commands},
    {{"sandbox"}, warren::cli::add_sandbox_commands, true},
    {{"run"}, warren::cli::add_run_command, true},
    {{"runs"}, warren::cli::add_runs_commands},
    {{"eval", "report"}, warren::cli::add_eval_commands, true},
    {{"image"}, warren::cli::add_image_commands},
    {{"model"}, warren::cli::add_model_commands},
};
#endif

// The group that `word` names, or nullptr.
const CommandGroup* group_named(const char* word) {
  for (const CommandGroup& group : kCommandGroups)
    for (const char* name : group.names)
      if (name && std::strcmp(name, word) == 0) return &group;
  return nullptr;
}

#ifdef WARREN_FRONT
// The command line, unchanged, to the warren-full beside this executable.
int hand_over(char** argv) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::string full = (self.parent_path() / "warren-full").string();
  if (!ec) execv(full.c_str(), argv);
  std::fprintf(stderr, "warren: cannot run %s: %s (keep warren-full beside warren)\n", full.c_str(),
               std::strerror(ec ? ec.value() : errno));
  return 127;
}
#endif

}  // namespace

int main(int argc, char** argv) {
#ifdef WARREN_FRONT
  if (argc < 2 || !group_named(argv[1])) return hand_over(argv);
#endif
  std::ios::sync_with_stdio(false);
  CLI::App app{"warren: run, sandbox and evaluate tool-calling agents on DeepSeek-V4 models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", kVersion);

  // Only the command group the first word names is built, all of them otherwise (--help, a
  // mistyped command): building the whole tree took a one-shot `warren sandbox exec` 0.5 ms of its
  // 12 (perf, 2026-12-05). A flag before the command (--version) builds them all too.
  int exit_code = 0;
  const CommandGroup* named = argc > 1 ? group_named(argv[1]) : nullptr;
  // Where it cannot, its workspaces are plain folders, and the commands say so where it matters.
  if (named && named->workspaces && geteuid() != 0) (void)warren::sandbox::join_own_namespace();
  for (const CommandGroup& group : kCommandGroups)
    if (!named || named == &group) group.add(app, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Bad flags: one line on stderr and exit 2, whatever CLI11 would have used.
    std::cerr << "warren: " << e.what() << " (see --help)\n";
    return 2;
  }
  // The command has run and released what it held. Exiting here leaves the flag tree to the
  // kernel: freeing it node by node took a one-shot `warren sandbox exec` 0.35 ms (perf,
  // 2026-12-05). Streams are flushed and static objects destroyed as on return.
  std::exit(exit_code);
}
