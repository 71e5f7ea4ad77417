#pragma once

#include <CLI/CLI.hpp>

namespace warren::cli {

// `warren sandbox exec|bench`.
void add_sandbox_commands(CLI::App& app, int& exit_code);

// sandbox_bench.cpp
int run_sandbox_bench(int runs, int concurrency, int idle, bool compare_bwrap, bool json);

}  // namespace warren::cli
