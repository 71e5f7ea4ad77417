#pragma once

#include <CLI/CLI.hpp>

namespace warren::cli {

// `warren run` (run_commands.cpp).
void add_run_command(CLI::App& app, int& exit_code);

// `warren runs list|show|export` (runs_commands.cpp).
void add_runs_commands(CLI::App& app, int& exit_code);

// `warren eval` and `warren report` (eval_commands.cpp).
void add_eval_commands(CLI::App& app, int& exit_code);

// `warren image list|build|import|prune` (image_commands.cpp).
void add_image_commands(CLI::App& app, int& exit_code);

// `warren model init|info` (model_commands.cpp).
void add_model_commands(CLI::App& app, int& exit_code);

}  // namespace warren::cli
