#pragma once

#include <CLI/CLI.hpp>

namespace warren::cli {

// `warren sandbox exec`: one command in an isolated sandbox.
void add_sandbox_commands(CLI::App& app, int& exit_code);

}  // namespace warren::cli
