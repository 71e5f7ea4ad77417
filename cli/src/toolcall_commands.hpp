#pragma once

#include <CLI/CLI.hpp>

namespace warren::cli {

// `warren toolcall encode|parse`: the DSML codec from the command line.
void add_toolcall_commands(CLI::App& app, int& exit_code);

}  // namespace warren::cli
