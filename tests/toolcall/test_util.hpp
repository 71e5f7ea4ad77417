// Helpers shared by the toolcall suites.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

#include "warren/toolcall/toolcall.hpp"

namespace warren::toolcall::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline std::string data_path(const std::string& name) {
  return std::string(WARREN_SOURCE_DIR) + "/tests/toolcall/data/" + name;
}

inline ParserOptions options(Mode mode, bool lenient = false, std::uint64_t seed = 7) {
  ParserOptions o;
  o.mode = mode;
  o.lenient = lenient;
  o.id_seed = seed;
  return o;
}

inline Result<ParsedMessage> parse(std::string_view text, const ParserOptions& o,
                                   std::size_t chunk = 0) {
  static const auto codec = make_codec(Format::V4);
  return parse_completion(*codec, text, o, chunk);
}

// Parses or fails the test with the parser's message.
inline ParsedMessage must_parse(std::string_view text, const ParserOptions& o,
                                std::size_t chunk = 0) {
  auto r = parse(text, o, chunk);
  if (!r) throw std::runtime_error("parse failed: " + r.error().message);
  return std::move(*r);
}

inline constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";

}  // namespace warren::toolcall::testing
