#pragma once

#include <CLI/CLI.hpp>

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

// sandbox_terminal.cpp: an interactive bash on a pty; returns its exit status.
int run_interactive_shell(const warren::sandbox::Policy& policy);

}  // namespace warren::cli
