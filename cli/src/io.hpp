// Small I/O helpers shared by the commands.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace warren::cli {

// The whole of a file, or of standard input for "" or "-". nullopt (and `error`) when unreadable.
std::optional<std::string> read_input(const std::string& path, std::string& error);

// `text` fit for a terminal: control characters (C0, DEL, and C1 as UTF-8 writes them) become
// '?'. Task names, messages and tool names come from task collections and models: printed as
// they are, an escape sequence in one would drive the operator's terminal.
std::string printable(std::string_view text);

// Writes bytes to standard output exactly as given (no newline added).
void write_stdout(const std::string& bytes);

}  // namespace warren::cli
