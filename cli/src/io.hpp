// Small I/O helpers shared by the commands.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warren::cli {

// The whole of a file, or of standard input for "" or "-". nullopt (and `error`) when unreadable.
std::optional<std::string> read_input(const std::string& path, std::string& error);

// `text` fit for a terminal: control characters (C0, DEL, and C1 as UTF-8 writes them) become
// '?', bytes that are not UTF-8 U+FFFD. Task names, messages and tool names come from task
// collections and models: printed as they are, an escape sequence in one would drive the operator's
// terminal.
std::string printable(std::string_view text);

// JSON as text for output, bytes that are not UTF-8 (a tool's output, a task's file name) as
// U+FFFD: nlohmann would throw on them and end the command with its result unprinted.
template <class Json>
std::string json_text(const Json& value, int indent = -1) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

// "512M", "1G", "64k", "1048576": bytes. nullopt for anything else.
std::optional<std::uint64_t> parse_size(const std::string& text);

// Writes bytes to standard output exactly as given (no newline added).
void write_stdout(const std::string& bytes);

}  // namespace warren::cli
