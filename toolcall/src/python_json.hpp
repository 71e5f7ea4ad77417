// JSON text exactly as Python's json.dumps(value, ensure_ascii=False) writes it, which is what the
// reference encoder puts in prompts and in decoded tool-call arguments: ", " and ": " separators,
// keys in insertion order, non-ASCII kept as UTF-8, floats in repr() form.
#pragma once

#include <string>
#include <string_view>

#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall::detail {

void append_python_json(const Json& value, std::string& out);
std::string python_json(const Json& value);

// A JSON string literal for UTF-8 text, quotes included. Escapes ", \, and control characters
// (\n \r \t \b \f, others as \u00xx), as json.dumps does; the text must be valid UTF-8.
void append_json_string(std::string_view text, std::string& out);
// The same without the surrounding quotes: for streaming a string in pieces.
void append_json_string_body(std::string_view text, std::string& out);

// append_json_string_body for text that may not be valid UTF-8: false (and `out` partly written)
// at the first malformed sequence.
bool append_json_string_body_checked(std::string_view text, std::string& out);
// Length of the longest prefix of `text` that is valid UTF-8 and needs no escaping.
std::size_t json_plain_prefix(std::string_view text);

// Requests and tool definitions are JSON trees that get copied, and nlohmann copies recurse; they
// are refused past this depth (Python's json module itself stops near 1,000).
inline constexpr std::size_t kMaxJsonDepth = 512;
bool nests_deeper_than(const Json& value, std::size_t limit);

// Python's repr() of a float: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
void append_python_float(double value, std::string& out);

}  // namespace warren::toolcall::detail
