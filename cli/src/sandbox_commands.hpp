#pragma once

#include <CLI/CLI.hpp>

#include "warren/sandbox/sandbox.hpp"

namespace warren::cli {

// `warren sandbox exec|shell|bench`.
void add_sandbox_commands(CLI::App& app, int& exit_code);

// sandbox_bench.cpp
int run_sandbox_bench(int runs, int concurrency, int idle, bool compare_bwrap, bool json);

// sandbox_terminal.cpp: an interactive bash on a pty; returns its exit status.
int run_interactive_shell(const warren::sandbox::Policy& policy);

}  // namespace warren::cli
