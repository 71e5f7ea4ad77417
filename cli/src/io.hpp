// Small I/O helpers shared by the commands.
#pragma once

#include <optional>
#include <string>

namespace warren::cli {

// The whole of a file, or of standard input for "" or "-". nullopt (and `error`) when unreadable.
std::optional<std::string> read_input(const std::string& path, std::string& error);

// Writes bytes to standard output exactly as given (no newline added).
void write_stdout(const std::string& bytes);

}  // namespace warren::cli
