// The DSML completion parser: one state machine for whole texts and for streams cut anywhere.
//
//   [Reasoning] --</think>--> [Content] --"\n\n<｜DSML｜tool_calls"--> [BlockOpen] -> [InBlock]
//   [InBlock]  --<invoke--> [InvokeHeader] -> [InInvoke] --<parameter--> [ParamHeader]
//   [ParamHeader] -> [ParamValue] --</parameter>--> [InInvoke] --</invoke>--> [InBlock]
//   [InBlock]  --</tool_calls>--> [AfterBlock] --EOS--> [AfterEos]
//
// Invariants:
//   - Bytes are consumed from the front of the input only once they are certain: text that may
//     still turn out to be the start of a marker (a '<' prefix, "\n\n" before a block, a cut UTF-8
//     sequence) stays unconsumed until more input or finish() decides it. Hence no partial marker
//     ever reaches a text event, and every cut of the input yields the same events' concatenation.
//   - What stays unconsumed is bounded (a tag header of at most kMaxHeaderBytes, or a marker's
//     length): values and text stream through, so memory is linear in the input at worst (values
//     of string="false" parameters are collected to be checked as JSON).
//   - Strict mode accepts what the reference parser accepts (docs/toolcall.md lists the few
//     deliberate differences); everything else is an Error event naming the problem and its byte
//     offset, and nothing follows it. Lenient mode makes the recoveries listed in dsml.md and
//     reports each as a Warning event.
#include "dsml_parser.hpp"

#include "call_builder.hpp"
#include "text_scan.hpp"

namespace warren::toolcall::detail {

namespace {

// memchr costs more than a loop on the few bytes of a small stream chunk.
std::size_t find_lt(std::string_view s, std::size_t from) {
  if (s.size() - from > 32) return s.find('<', from);
  for (std::size_t i = from; i < s.size(); ++i)
    if (s[i] == '<') return i;
  return std::string_view::npos;
}

bool is_blank(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

// Markup quoted in a message, cut short.
std::string display(std::string_view token) {
  return std::string(token.substr(0, 40));
}

class DsmlParser final : public StreamParser {
 public:
  DsmlParser(const DsmlDialect& dialect, const ParserOptions& options, EventSink& sink)
      : dialect_(dialect),
        lenient_(options.lenient),
        sink_(sink),
        calls_(sink, options.tools, options.lenient, options.id_seed) {
    state_ = options.mode == Mode::Thinking ? State::Reasoning : State::Content;
  }

  void feed(std::string_view bytes) override {
    if (terminal()) return;
    if (buf_.empty()) {
      // Common case (whole texts, and most stream chunks): parse the caller's bytes in place and
      // keep only the undecided tail.
      view_ = bytes;
      head_ = 0;
      run();
      base_ += head_;
      if (head_ < view_.size()) buf_.assign(view_.substr(head_));
    } else {
      buf_.append(bytes);
      view_ = buf_;
      head_ = 0;
      run();
      base_ += head_;
      buf_.erase(0, head_);
    }
    head_ = 0;
    view_ = buf_;
  }

  void finish() override {
    if (terminal()) return;
    finishing_ = true;
    view_ = buf_;
    head_ = 0;
    run();
    if (!terminal()) finish_state();
    buf_.clear();
  }

  bool failed() const override { return state_ == State::Failed; }

 private:
  enum class State {
    Reasoning,
    Content,
    BlockOpen,
    InBlock,
    InvokeHeader,
    InInvoke,
    ParamHeader,
    ParamValue,
    AfterBlock,
    AfterEos,
    Discard,
    Done,
    Failed,
  };

  bool terminal() const { return state_ == State::Done || state_ == State::Failed; }
  std::string_view rest() const { return view_.substr(head_); }
  std::uint64_t offset(std::size_t i) const { return base_ + head_ + i; }
  void consume(std::size_t n) { head_ += n; }

  void run() {
    while (!terminal() && step()) {
    }
  }

  // One step of the current state; false when it needs more input than there is.
  bool step() {
    switch (state_) {
      case State::Reasoning:
      case State::Content:
        return text_step();
      case State::BlockOpen:
        return block_open_step();
      case State::InBlock:
      case State::InInvoke:
        return tag_step();
      case State::InvokeHeader:
        return invoke_header_step();
      case State::ParamHeader:
        return param_header_step();
      case State::ParamValue:
        return value_step();
      case State::AfterBlock:
      case State::AfterEos:
      case State::Discard:
        return tail_step();
      case State::Done:
      case State::Failed:
        return false;
    }
    return false;
  }

  // ---- events -------------------------------------------------------------------------------

  void emit(EventKind kind, std::string_view text, std::uint64_t at = 0) {
    Event e{kind, text};
    e.offset = at;
    sink_.on_event(e);
  }
  void emit_text(std::string_view text) {
    if (text.empty()) return;
    emit(state_ == State::Reasoning ? EventKind::ReasoningDelta : EventKind::ContentDelta, text);
  }
  void warn(const std::string& message, std::uint64_t at) { emit(EventKind::Warning, message, at); }
  bool fail(const std::string& message, std::uint64_t at) {
    state_ = State::Failed;
    const std::string line = message + " (at byte " + std::to_string(at) + ")";
    emit(EventKind::Error, line, at);
    return false;
  }
  // Strict: the problem ends the parse. Lenient: a warning, and the caller recovers.
  bool recoverable(const std::string& message, std::uint64_t at) {
    if (!lenient_) return fail(message, at);
    warn(message, at);
    return true;
  }
  // One warning per distinct variant spelling of the markup, not one per tag.
  void warn_variant(const Token& t, std::uint64_t at) {
    std::string_view key = t.variant.substr(t.closing ? 2 : 1);
    if (t.kind != TokenKind::Block) {  // the bars alone: "|DSML|" for invoke and parameter alike
      while (!key.empty() && ((key.back() >= 'a' && key.back() <= 'z') || key.back() == '_'))
        key.remove_suffix(1);
    }
    for (const std::string& seen : warned_variants_)
      if (seen == key) return;
    warned_variants_.emplace_back(key);
    warn("read variant tool-call markup " + display(t.variant), at);
  }

  void done() {
    state_ = State::Done;
    emit(EventKind::Done, calls_.count() > 0 ? "tool_calls" : "stop");
  }

  // ---- free text: reasoning and content --------------------------------------------------

  bool text_step() {
    const std::string_view s = rest();
    const bool reasoning = state_ == State::Reasoning;
    const char* where = reasoning ? "reasoning" : "content";
    std::size_t i = 0;
    while (true) {
      const ScanStop r = scan_text(s, i);
      switch (r.stop) {
        case Stop::End: {
          const std::size_t keep = finishing_ ? 0 : trailing_newlines(s, s.size());
          emit_text(s.substr(0, s.size() - keep));
          consume(s.size() - keep);
          return false;
        }
        case Stop::Truncated:
          if (!finishing_) {
            emit_text(s.substr(0, r.pos));
            consume(r.pos);
            return false;
          }
          [[fallthrough]];
        case Stop::BadUtf8: {
          if (!recoverable(std::string("invalid UTF-8 in ") + where, offset(r.pos))) return false;
          // One U+FFFD per malformed byte, or for a whole sequence cut off by the end.
          const std::size_t bad = r.stop == Stop::Truncated ? s.size() - r.pos : 1;
          emit_text(s.substr(0, r.pos));
          emit_text("\xEF\xBF\xBD");
          consume(r.pos + bad);
          return true;
        }
        case Stop::Bar: {
          const std::string_view at = s.substr(r.pos);
          if (at.size() < dialect_.marker.size() && !finishing_ &&
              dialect_.marker.substr(0, at.size()) == at) {
            emit_text(s.substr(0, r.pos));
            consume(r.pos);
            return false;
          }
          if (at.substr(0, dialect_.marker.size()) == dialect_.marker &&
              !recoverable(std::string("stray ") + std::string(dialect_.marker) + " in " + where,
                           offset(r.pos)))
            return false;
          i = r.pos + 3;
          continue;
        }
        case Stop::Lt: {
          const Token t = match_token(s.substr(r.pos), dialect_, lenient_, finishing_);
          if (t.match == Match::None) {
            i = r.pos + 1;
            continue;
          }
          if (t.match == Match::NeedMore) {
            const std::size_t keep = trailing_newlines(s, r.pos);
            emit_text(s.substr(0, r.pos - keep));
            consume(r.pos - keep);
            return false;
          }
          if (is_text_markup(t)) {
            if (!recoverable("unexpected " + display(s.substr(r.pos, t.length)) + " in " + where,
                             offset(r.pos)))
              return false;
            i = r.pos + t.length;  // lenient: keep it as text
            continue;
          }
          return text_token(s, r.pos, t);
        }
      }
    }
  }

  // DSML tags that free text cannot contain and that no recovery turns into structure.
  static bool is_text_markup(const Token& t) {
    switch (t.kind) {
      case TokenKind::Block:
      case TokenKind::Invoke:
        return t.closing;
      case TokenKind::Parameter:
      case TokenKind::UnknownDsml:
        return true;
      default:
        return false;
    }
  }

  bool text_token(std::string_view s, std::size_t pos, const Token& t) {
    const bool reasoning = state_ == State::Reasoning;
    const std::size_t newlines = trailing_newlines(s, pos);
    switch (t.kind) {
      case TokenKind::ThinkEnd:
        if (reasoning) {
          emit_text(s.substr(0, pos));
          consume(pos + t.length);
          state_ = State::Content;
          return true;
        }
        [[fallthrough]];
      case TokenKind::ThinkStart:
      case TokenKind::Bos:
        if (!recoverable("unexpected special token " + std::string(s.substr(pos, t.length)) +
                             (reasoning ? " in reasoning" : " in content"),
                         offset(pos)))
          return false;
        emit_text(s.substr(0, pos));
        consume(pos + t.length);  // lenient: dropped
        return true;
      case TokenKind::Eos:
        if (reasoning &&
            !recoverable("missing </think>: the completion ended inside reasoning", offset(pos)))
          return false;
        emit_text(s.substr(0, pos));
        consume(pos + t.length);
        state_ = State::AfterEos;
        return true;
      case TokenKind::Block:
      case TokenKind::Invoke: {
        if (reasoning && !recoverable("tool calls inside reasoning: missing </think>", offset(pos)))
          return false;
        if (t.kind == TokenKind::Invoke &&
            !recoverable("tool call without a <" + std::string(dialect_.marker) +
                             std::string(dialect_.block_name) + "> block",
                         offset(pos)))
          return false;
        if (t.kind == TokenKind::Block && newlines < 2 && !reasoning &&
            !recoverable("a tool-call block must start on a new paragraph (\"\\n\\n<" +
                             std::string(dialect_.marker) + std::string(dialect_.block_name) +
                             ">\")",
                         offset(pos)))
          return false;
        if (!t.canonical) warn_variant(t, offset(pos));
        emit_text(s.substr(0, pos - newlines));
        if (t.kind == TokenKind::Block) {
          consume(pos + t.length);
          state_ = State::BlockOpen;
        } else {
          consume(pos);  // the invoke tag is read again in the block
          state_ = State::InBlock;
          expected_newlines_ = 0;
        }
        return true;
      }
      default:
        return false;  // is_text_markup() handled the rest
    }
  }

  // ---- the tool-call block ---------------------------------------------------------------

  bool block_open_step() {
    const std::string_view s = rest();
    if (s.empty()) return false;
    if (s[0] != '>') {
      return fail("expected '>' to close <" + std::string(dialect_.marker) +
                      std::string(dialect_.block_name),
                  offset(0));
    }
    consume(1);
    state_ = State::InBlock;
    expected_newlines_ = 1;
    return true;
  }

  // Between tags: blanks only. The reference wants exactly one newline (after an invoke header,
  // one or two); lenient mode takes any blanks.
  bool tag_step() {
    std::string_view s = rest();
    std::size_t i = 0;
    while (i < s.size() && is_blank(s[i])) {
      if (s[i] == '\n') {
        ++gap_newlines_;
      } else {
        gap_other_ = true;
      }
      ++i;
    }
    consume(i);
    s = rest();
    if (s.empty()) return false;
    const std::uint64_t at = offset(0);
    // Lenient: text between tags is skipped up to the next tag, with one warning for the run.
    if (s[0] != '<') {
      if (!in_junk_ && !recoverable("unexpected text between tool-call tags", at)) return false;
      in_junk_ = true;
      const std::size_t next = s.find('<');
      consume(next == std::string_view::npos ? s.size() : next);
      return true;
    }
    const Token t = match_token(s, dialect_, lenient_, finishing_);
    if (t.match == Match::NeedMore) return false;
    if (t.match == Match::None) {
      if (!in_junk_ && !recoverable("unexpected '<' between tool-call tags", at)) return false;
      in_junk_ = true;
      consume(1);
      return true;
    }
    const bool gap_ok = !gap_other_ && gap_newlines_ >= (expected_newlines_ ? 1 : 0) &&
                        gap_newlines_ <= expected_newlines_;
    if (!in_junk_ && !gap_ok && expected_newlines_ > 0 &&
        !recoverable("expected a single newline between tool-call tags", at))
      return false;
    gap_newlines_ = 0;
    gap_other_ = false;
    in_junk_ = false;
    if (!t.canonical) warn_variant(t, at);
    return state_ == State::InBlock ? block_tag(s, t, at) : invoke_tag(s, t, at);
  }

  // A closing tag's name must be followed by '>'. Returns 0 while undecided.
  std::size_t closing_tag_length(std::string_view s, const Token& t, std::uint64_t at, bool& bad) {
    bad = false;
    if (s.size() <= t.length) {
      // The reference accepts a completion that ends with "</｜DSML｜invoke" (no '>').
      const bool accepted = t.kind == TokenKind::Invoke;
      if (finishing_ && !accepted) bad = !recoverable("input ends inside a closing tag", at);
      return finishing_ ? s.size() : 0;
    }
    if (s[t.length] != '>') {
      bad = true;
      fail("expected '>' to close " + display(s.substr(0, t.length)), at);
      return 0;
    }
    return t.length + 1;
  }

  bool block_tag(std::string_view s, const Token& t, std::uint64_t at) {
    if (t.kind == TokenKind::Invoke && !t.closing) {
      consume(t.length);
      state_ = State::InvokeHeader;
      return true;
    }
    if (t.kind == TokenKind::Block && t.closing) {
      bool bad = false;
      const std::size_t n = closing_tag_length(s, t, at, bad);
      if (bad || n == 0) return false;
      consume(n);
      state_ = State::AfterBlock;
      return true;
    }
    if (t.kind == TokenKind::Eos) {
      if (!recoverable("tool-call block not closed before the end-of-sentence token", at))
        return false;
      consume(t.length);
      state_ = State::AfterEos;
      return true;
    }
    return fail("expected <" + std::string(dialect_.marker) + "invoke or </" +
                    std::string(dialect_.marker) + std::string(dialect_.block_name) + ">",
                at);
  }

  bool invoke_tag(std::string_view s, const Token& t, std::uint64_t at) {
    if (t.kind == TokenKind::Parameter && !t.closing) {
      consume(t.length);
      state_ = State::ParamHeader;
      return true;
    }
    if (t.kind == TokenKind::Invoke && t.closing) {
      bool bad = false;
      const std::size_t n = closing_tag_length(s, t, at, bad);
      if (bad || n == 0) return false;
      consume(n);
      calls_.finish_call(offset(0));
      // Input that ends inside "</｜DSML｜invoke" ends the block there, as the reference reads it.
      state_ = n <= t.length ? State::AfterBlock : State::InBlock;
      expected_newlines_ = 1;
      return true;
    }
    // Lenient: an invoke that is never closed ends where the next invoke, the block's end or
    // the end-of-sentence token begins.
    const bool ends_invoke = (t.kind == TokenKind::Invoke && !t.closing) ||
                             (t.kind == TokenKind::Block && t.closing) || t.kind == TokenKind::Eos;
    if (ends_invoke && lenient_) {
      warn("invoke not closed with </" + std::string(dialect_.marker) + "invoke>", at);
      calls_.finish_call(offset(0));
      state_ = State::InBlock;
      expected_newlines_ = 0;
      return true;  // the tag is read again in the block
    }
    return fail("expected <" + std::string(dialect_.marker) + "parameter or </" +
                    std::string(dialect_.marker) + "invoke>",
                at);
  }

  bool invoke_header_step() {
    const std::string_view s = rest();
    const TagHeader h = parse_invoke_header(s, finishing_);
    if (h.match == Match::NeedMore) return false;
    if (h.match == Match::None) return fail(h.problem, offset(0));
    bool truncated = false;
    if (find_bad_utf8(h.name, truncated) != std::string_view::npos)
      return fail("invalid UTF-8 in a tool name", offset(0));
    consume(h.length);
    calls_.begin_call(h.name);
    state_ = State::InInvoke;
    expected_newlines_ = 2;
    return true;
  }

  bool param_header_step() {
    const std::string_view s = rest();
    const TagHeader h = parse_parameter_header(s, lenient_, finishing_);
    if (h.match == Match::NeedMore) return false;
    if (h.match == Match::None) return fail(h.problem, offset(0));
    bool truncated = false;
    if (find_bad_utf8(h.name, truncated) != std::string_view::npos)
      return fail("invalid UTF-8 in a parameter name", offset(0));
    if (h.string_flag < 0)
      warn("parameter '" + h.name + "' has no string attribute; read as a string", offset(0));
    consume(h.length);
    calls_.begin_param(h.name, h.string_flag != 0);
    state_ = State::ParamValue;
    return true;
  }

  bool value_step() {
    const std::string_view s = rest();
    std::size_t i = 0;
    while (true) {
      const std::size_t lt = find_lt(s, i);
      if (lt == std::string_view::npos) {
        const auto* p = reinterpret_cast<const unsigned char*>(s.data());
        const std::size_t keep = finishing_ ? 0 : utf8_incomplete_tail(p, p + s.size());
        if (!value_bytes(s.substr(0, s.size() - keep))) return false;
        consume(s.size() - keep);
        return false;
      }
      if (lt + 1 < s.size() && s[lt + 1] != '/') {  // only a closing tag ends a value
        i = lt + 1;
        continue;
      }
      const Token t = match_token(s.substr(lt), dialect_, lenient_, finishing_);
      if (t.match == Match::NeedMore) {
        if (!value_bytes(s.substr(0, lt))) return false;
        consume(lt);
        return false;
      }
      const bool closes_param =
          t.match == Match::Token && t.closing && t.kind == TokenKind::Parameter;
      const bool closes_invoke =
          lenient_ && t.match == Match::Token && t.closing && t.kind == TokenKind::Invoke;
      if (!closes_param && !closes_invoke) {
        i = lt + 1;
        continue;
      }
      if (!value_bytes(s.substr(0, lt))) return false;
      consume(lt);
      std::size_t n = 0;
      if (closes_param) {
        bool bad = false;
        n = closing_tag_length(s.substr(lt), t, offset(0), bad);
        if (bad || n == 0) return false;  // n == 0: undecided, wait with the tag unconsumed
      } else {
        warn("parameter '" + calls_.param_name() + "' not closed before </" +
                 std::string(dialect_.marker) + "invoke>",
             offset(0));
      }
      calls_.end_param(offset(0));
      consume(n);
      state_ = State::InInvoke;
      expected_newlines_ = closes_param ? 1 : 0;
      return true;
    }
  }

  // After the block: only the end-of-sentence token; after it, nothing.
  bool tail_step() {
    const std::string_view s = rest();
    if (s.empty()) return false;
    if (state_ == State::Discard) {
      consume(s.size());
      return false;
    }
    if (state_ == State::AfterBlock && s[0] == '<') {
      const Token t = match_token(s, dialect_, lenient_, finishing_);
      if (t.match == Match::NeedMore) return false;
      if (t.match == Match::Token && t.kind == TokenKind::Eos) {
        consume(t.length);
        state_ = State::AfterEos;
        return true;
      }
    }
    if (!recoverable(state_ == State::AfterBlock
                         ? "unexpected text after the tool-call block"
                         : "unexpected text after the end-of-sentence token",
                     offset(0)))
      return false;
    state_ = State::Discard;
    return true;
  }

  // The end of input in each state.
  // The end of input in each state. Where the reference parser accepts a completion that stops
  // early, so does strict mode: a turn without tool calls needs the end-of-sentence token, but a
  // tool-call block may stop right after its start tag, after a complete invoke header, after a
  // closed parameter (each followed by its newline), or inside </｜DSML｜invoke.
  void finish_state() {
    const std::uint64_t at = offset(0);
    switch (state_) {
      case State::Reasoning:
        if (!recoverable("missing </think>: the completion ended inside reasoning", at)) return;
        break;
      case State::Content:
        // Serving engines often strip the token: lenient mode takes the end of input for it.
        if (!lenient_) {
          fail("missing " + std::string(dialect_.eos) +
                   " at the end of the completion (--lenient accepts text without it)",
               at);
          return;
        }
        break;
      case State::BlockOpen:
        break;  // `\n\n<｜DSML｜tool_calls` and nothing more: an empty block
      case State::InBlock:
        if (!recoverable("tool-call block not closed at the end of the completion", at)) return;
        break;
      case State::InInvoke:
        if (!in_junk_ && !gap_other_ && gap_newlines_ >= 1 && gap_newlines_ <= expected_newlines_) {
          calls_.finish_call(at);
          break;
        }
        [[fallthrough]];
      case State::InvokeHeader:
      case State::ParamHeader:
      case State::ParamValue:
        if (!recoverable("the completion ended inside a tool call", at)) return;
        if (state_ != State::InvokeHeader) {
          calls_.add_error("the completion ended before this call was complete");
          if (state_ == State::ParamValue) calls_.end_param(at);
          calls_.finish_call(at);
        }
        break;
      default:
        break;
    }
    done();
  }

  // ---- values ----------------------------------------------------------------------------

  // Raw bytes of the current value; they start at the head of the input, so offset(k) is the
  // offset of bytes[k]. Lenient mode replaces each malformed UTF-8 byte by U+FFFD.
  bool value_bytes(std::string_view bytes) {
    if (calls_.value(bytes)) return true;
    std::string fixed;
    for (std::size_t pos = 0;;) {
      bool truncated = false;
      const std::size_t bad = find_bad_utf8(bytes.substr(pos), truncated);
      if (bad == std::string_view::npos) {
        fixed.append(bytes.substr(pos));
        break;
      }
      if (!recoverable("invalid UTF-8 in parameter '" + calls_.param_name() + "'",
                       offset(pos + bad)))
        return false;
      fixed.append(bytes.substr(pos, bad));
      fixed.append("\xEF\xBF\xBD");
      pos += bad + 1;
    }
    return calls_.value(fixed);
  }

  const DsmlDialect& dialect_;
  const bool lenient_;
  EventSink& sink_;
  State state_;
  bool finishing_ = false;

  // Input not yet consumed: view_[head_..]. view_ is either the caller's chunk or buf_.
  std::string buf_;
  std::string_view view_;
  std::size_t head_ = 0;
  std::uint64_t base_ = 0;  // byte offset of view_[0] in the whole completion

  // Blanks seen between two tags, and how many newlines the reference allows there.
  int gap_newlines_ = 0;
  bool gap_other_ = false;
  int expected_newlines_ = 1;
  bool in_junk_ = false;  // lenient: skipping text between tags (already warned)
  std::vector<std::string> warned_variants_;

  CallBuilder calls_;
};

}  // namespace

std::unique_ptr<StreamParser> make_dsml_parser(const DsmlDialect& dialect,
                                               const ParserOptions& options, EventSink& sink) {
  return std::make_unique<DsmlParser>(dialect, options, sink);
}

}  // namespace warren::toolcall::detail
