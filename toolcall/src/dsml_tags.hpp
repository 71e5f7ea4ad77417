// Recognising the markup of a DSML completion at a '<': special tokens (EOS, BOS, <think>,
// </think>) and DSML tags (<｜DSML｜tool_calls>, <｜DSML｜invoke name="...">,
// <｜DSML｜parameter name="..." string="...">, and their closing forms).
//
// Everything here works on a prefix of the input: when the bytes seen so far could still become
// a token, the answer is NeedMore, and the caller waits for more input before deciding. That is
// what keeps partial markers out of streamed text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace warren::toolcall::detail {

// The special tokens and the block name of one DSML dialect.
struct DsmlDialect {
  std::string_view bos, eos, think_start, think_end;
  std::string_view marker;      // "｜DSML｜"
  std::string_view block_name;  // "tool_calls"
};

enum class Match { None, NeedMore, Token };

enum class TokenKind { Eos, Bos, ThinkStart, ThinkEnd, Block, Invoke, Parameter, UnknownDsml };

struct Token {
  Match match = Match::None;
  TokenKind kind = TokenKind::UnknownDsml;
  std::size_t length = 0;  // bytes up to the end of the tag name (special tokens: the whole token)
  bool closing = false;    // "</"
  bool canonical =
      true;  // the exact marker and name of the dialect (strict mode accepts only these)
  std::string_view variant;  // lenient: what was recognised, for the warning
};

// `s` starts with '<'. Strict mode recognises only canonical DSML tags; lenient also recognises
// ASCII bars `|DSML|`, doubled bars, and the block names `function_calls` and `toolcalls`.
// `at_end`: no more input will come, so a prefix is not a possible token.
Token match_token(std::string_view s, const DsmlDialect& dialect, bool lenient, bool at_end);

// Attributes of an opening tag, parsed from the bytes right after its name.
struct TagHeader {
  Match match = Match::None;  // None: malformed (see problem)
  std::size_t length = 0;     // bytes through the closing '>'
  std::string name;
  int string_flag = -1;  // parameters: 1 "true", 0 "false", -1 absent
  std::string problem;
};

// ` name="NAME">` after `<｜DSML｜invoke` (leading whitespace allowed, as the reference allows).
TagHeader parse_invoke_header(std::string_view s, bool at_end);
// ` name="NAME" string="true|false">` after `<｜DSML｜parameter`.
TagHeader parse_parameter_header(std::string_view s, bool lenient, bool at_end);

// Headers longer than this are rejected rather than buffered without bound.
inline constexpr std::size_t kMaxHeaderBytes = 4096;

}  // namespace warren::toolcall::detail
