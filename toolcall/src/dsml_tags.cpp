#include "dsml_tags.hpp"

#include <algorithm>
#include <utility>

namespace warren::toolcall::detail {

namespace {

constexpr std::string_view kFullBar = "｜";  // U+FF5C

// Compares `s` with `word` as far as `s` goes: Token if `s` starts with all of `word`, NeedMore
// if `s` is a proper prefix of it (and more input may come), None otherwise.
Match prefix_match(std::string_view s, std::string_view word, bool at_end) {
  if (s.size() >= word.size()) return s.substr(0, word.size()) == word ? Match::Token : Match::None;
  if (word.substr(0, s.size()) != s) return Match::None;
  return at_end ? Match::None : Match::NeedMore;
}

// Bars around DSML: one or two, fullwidth or ASCII. Returns the count of bars read (0 if none),
// or -1 when the input ends inside a bar.
int read_bars(std::string_view s, std::size_t& pos, bool& ascii, bool at_end) {
  int bars = 0;
  while (bars < 2) {
    std::string_view rest = s.substr(pos);
    if (!rest.empty() && rest[0] == '|') {
      ascii = true;
      ++pos;
    } else {
      const Match m = prefix_match(rest, kFullBar, at_end);
      if (m == Match::NeedMore && !rest.empty()) return -1;
      if (m != Match::Token) break;
      pos += kFullBar.size();
    }
    ++bars;
  }
  if (pos == s.size() && !at_end && bars < 2) return -1;  // another bar may follow
  return bars;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || c == '_';
}

Token dsml_tag(std::string_view s, const DsmlDialect& d, bool lenient, bool at_end) {
  Token t;
  std::size_t pos = 1;
  if (pos < s.size() && s[pos] == '/') {
    t.closing = true;
    ++pos;
  }
  if (pos == s.size()) {
    if (!at_end) t.match = Match::NeedMore;
    return t;
  }
  bool ascii = false;
  const int bars_before = read_bars(s, pos, ascii, at_end);
  if (bars_before < 0) {
    t.match = Match::NeedMore;
    return t;
  }
  if (bars_before == 0) return t;
  const Match dsml = prefix_match(s.substr(pos), "DSML", at_end);
  if (dsml != Match::Token) {
    t.match = dsml;
    return t;
  }
  pos += 4;
  const int bars_after = read_bars(s, pos, ascii, at_end);
  if (bars_after < 0) {
    t.match = Match::NeedMore;
    return t;
  }
  if (bars_after == 0) return t;
  const std::size_t name_start = pos;
  while (pos < s.size() && is_name_char(s[pos])) ++pos;
  if (pos == s.size() && !at_end) {
    t.match = Match::NeedMore;
    return t;
  }
  const std::string_view name = s.substr(name_start, pos - name_start);
  t.length = pos;
  t.canonical = !ascii && bars_before == 1 && bars_after == 1;
  if (name == d.block_name) {
    t.kind = TokenKind::Block;
  } else if (name == "invoke") {
    t.kind = TokenKind::Invoke;
  } else if (name == "parameter") {
    t.kind = TokenKind::Parameter;
  } else if (name == "function_calls" || name == "toolcalls") {
    t.kind = TokenKind::Block;
    t.canonical = false;
  } else {
    t.kind = TokenKind::UnknownDsml;
  }
  if (!t.canonical) {
    if (!lenient)
      return Token{};  // strict: not markup (a stray exact marker is caught by the caller)
    t.variant = s.substr(0, t.length);
  }
  t.match = Match::Token;
  return t;
}

std::size_t skip_ws(std::string_view s, std::size_t pos) {
  while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\n' || s[pos] == '\t' || s[pos] == '\r'))
    ++pos;
  return pos;
}

// The part of `s` a tag header can occupy: up to the first newline (names never hold one) and at
// most kMaxHeaderBytes. `complete`: the region cannot grow with more input.
std::string_view header_region(std::string_view s, bool at_end, bool& complete) {
  const std::size_t newline = s.find('\n');
  std::string_view region = s.substr(0, std::min(newline, kMaxHeaderBytes));
  complete = at_end || region.size() < s.size();
  return region;
}

TagHeader header_problem(std::string problem) {
  TagHeader h;
  h.problem = std::move(problem);
  return h;
}

TagHeader header_need_more() {
  TagHeader h;
  h.match = Match::NeedMore;
  return h;
}

}  // namespace

Token match_token(std::string_view s, const DsmlDialect& d, bool lenient, bool at_end) {
  // Fast rejection of ordinary '<' (code, HTML, comparisons): every token and tag continues with
  // '/', '|', 't' (<think>) or the first byte of '｜'.
  if (s.size() >= 2) {
    const char c = s[1];
    if (c != '/' && c != '|' && c != 't' && c != '\xEF') return Token{};
  }
  bool any_prefix = false;
  for (auto [word, kind] :
       {std::pair{d.eos, TokenKind::Eos}, std::pair{d.think_end, TokenKind::ThinkEnd},
        std::pair{d.think_start, TokenKind::ThinkStart}, std::pair{d.bos, TokenKind::Bos}}) {
    const Match m = prefix_match(s, word, at_end);
    if (m == Match::Token) {
      Token t;
      t.match = Match::Token;
      t.kind = kind;
      t.length = word.size();
      return t;
    }
    any_prefix = any_prefix || m == Match::NeedMore;
  }
  Token tag = dsml_tag(s, d, lenient, at_end);
  if (tag.match == Match::None && any_prefix) tag.match = Match::NeedMore;
  return tag;
}

TagHeader parse_invoke_header(std::string_view s, bool at_end) {
  bool complete = false;
  const std::string_view region = header_region(s, at_end, complete);
  // The reference allows any whitespace before name=; a newline ends the region, so only blanks.
  const std::size_t pos = skip_ws(region, 0);
  const Match open = prefix_match(region.substr(pos), "name=\"", complete);
  if (open == Match::NeedMore || (open == Match::None && pos == region.size() && !complete))
    return header_need_more();
  if (open != Match::Token) return header_problem("expected name=\"...\" in the invoke tag");
  const std::size_t close = region.find("\">", pos + 6);
  if (close == std::string_view::npos) {
    if (!complete) return header_need_more();
    return header_problem("invoke tag not closed with '\">'");
  }
  TagHeader h;
  h.match = Match::Token;
  h.name = std::string(region.substr(pos + 6, close - pos - 6));
  h.length = close + 2;
  return h;
}

TagHeader parse_parameter_header(std::string_view s, bool lenient, bool at_end) {
  bool complete = false;
  const std::string_view region = header_region(s, at_end, complete);
  // The reference requires exactly one space before name=; lenient mode takes any blanks.
  const std::size_t pos = lenient ? skip_ws(region, 0) : std::min<std::size_t>(1, region.size());
  if (!lenient && !region.empty() && region[0] != ' ')
    return header_problem("expected ' name=\"...\"' in the parameter tag");
  const Match open = prefix_match(region.substr(pos), "name=\"", complete);
  if (open == Match::NeedMore || (open == Match::None && pos == region.size() && !complete))
    return header_need_more();
  if (open != Match::Token) return header_problem("expected name=\"...\" in the parameter tag");
  const std::size_t name_start = pos + 6;
  // The tag ends at the first '>', so the decision never depends on where the input was cut.
  // (Names holding '"' or '>' are not supported; no tool has one.)
  const std::size_t gt = region.find('>', name_start);
  if (gt == std::string_view::npos)
    return complete ? header_problem("parameter tag not closed with '>'") : header_need_more();
  const std::string_view attrs = region.substr(name_start, gt - name_start);
  const std::size_t quote = attrs.find('"');
  TagHeader h;
  h.match = Match::Token;
  h.length = gt + 1;
  h.name = std::string(attrs.substr(0, quote));
  const std::string_view after = quote == std::string_view::npos ? "" : attrs.substr(quote);
  if (after == "\" string=\"true\"") {
    h.string_flag = 1;
  } else if (after == "\" string=\"false\"") {
    h.string_flag = 0;
  } else if (!(lenient && after == "\"")) {  // lenient: `name="x">` without the attribute
    return header_problem("expected string=\"true\" or string=\"false\" in the parameter tag");
  }
  return h;
}

}  // namespace warren::toolcall::detail
