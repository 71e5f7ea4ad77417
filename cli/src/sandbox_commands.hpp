#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "warren/sandbox/sandbox.hpp"

namespace warren::cli {

// `warren sandbox exec|shell|bench`.
void add_sandbox_commands(CLI::App& app, int& exit_code);

// sandbox_bench.cpp
struct BenchOptions {
  int runs = 200, concurrency = 16, idle = 0;
  // Each round measures warren (and bwrap) once, alternating; figures are the rounds' medians.
  int rounds = 1;
  // compare_floor: /bin/true without a sandbox as well, the machine's own cost of a process.
  bool compare_bwrap = false, compare_floor = false, json = false;
  // When > 0, only the one-shot figure: this many pairs (sandbox_bench_one_shot.cpp).
  int one_shot = 0;
};
int run_sandbox_bench(const BenchOptions& options);
// `warren sandbox exec -- /bin/true` as a whole command against bwrap's, in alternating pairs.
int run_one_shot_bench(int pairs, bool json);

// sandbox_workspace.cpp: `--workspace DIR` as root, an overlay over DIR bounded by --disk whose
// changes are written into DIR when the sandbox has ended.
class FolderWorkspace {
 public:
  static warren::sandbox::Result<std::unique_ptr<FolderWorkspace>> open(const std::string& folder,
                                                                        std::uint64_t bytes);
  ~FolderWorkspace();  // removes the overlay and its layers
  FolderWorkspace(const FolderWorkspace&) = delete;
  FolderWorkspace& operator=(const FolderWorkspace&) = delete;
  // The policy's workspace becomes the overlay, its sandboxes this workspace's id range.
  void use_in(warren::sandbox::Policy& policy) const;
  // Once every sandbox on it has ended: the changes into the folder, and notes for the user (the
  // workspace filled up).
  warren::sandbox::Result<std::vector<std::string>> write_back();

 private:
  FolderWorkspace(std::string folder, std::string place, warren::sandbox::IdRange ids);
  std::string workspace() const { return place_ + "/workspace"; }
  std::string folder_, place_;
  warren::sandbox::IdRange ids_;
};

// sandbox_terminal.cpp: an interactive bash on a pty; returns its exit status.
int run_interactive_shell(const warren::sandbox::Policy& policy);

}  // namespace warren::cli
