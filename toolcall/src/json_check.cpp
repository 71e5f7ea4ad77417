#include "json_check.hpp"

#include <algorithm>
#include <vector>

#include "python_json.hpp"
#include "utf8.hpp"

namespace warren::toolcall::detail {

namespace {

bool is_ws(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

class Checker {
 public:
  Checker(std::string_view text, std::string* out) : s_(text), out_(out) {
    if (out_) out_->clear();
  }

  JsonCheck run() {
    // Containers open so far: '{' or '['. The only memory that grows with nesting.
    std::vector<char> open;
    auto bad = [&](const char* what) {
      fail(what);
      return result_;
    };
    enum class Want {
      Value,
      ValueOrClose,
      KeyOrClose,
      Key,
      Colon,
      CommaOrClose
    } want = Want::Value;
    skip_ws();
    while (true) {
      if (pos_ >= s_.size()) {
        if (open.empty() && want == Want::CommaOrClose) break;
        return bad("unexpected end of JSON");
      }
      const unsigned char c = s_[pos_];
      switch (want) {
        case Want::KeyOrClose:
        case Want::ValueOrClose:
          if (c == (want == Want::KeyOrClose ? '}' : ']')) {
            emit(c);
            open.pop_back();
            want = Want::CommaOrClose;
            break;
          }
          [[fallthrough]];
        case Want::Key:
        case Want::Value:
          if (want == Want::Key || want == Want::KeyOrClose) {
            if (c != '"') return bad("expected a string key");
            if (!string()) return result_;
            want = Want::Colon;
            break;
          }
          if (c == '{' || c == '[') {
            emit(c);
            open.push_back(static_cast<char>(c));
            want = c == '{' ? Want::KeyOrClose : Want::ValueOrClose;
            break;
          }
          if (!scalar()) return result_;
          want = Want::CommaOrClose;
          break;
        case Want::Colon:
          if (c != ':') return bad("expected ':'");
          emit(c);
          want = Want::Value;
          break;
        case Want::CommaOrClose:
          if (open.empty()) return bad("unexpected text after the JSON value");
          if (c == ',') {
            emit(c);
            want = open.back() == '{' ? Want::Key : Want::Value;
          } else if (c == (open.back() == '{' ? '}' : ']')) {
            emit(c);
            open.pop_back();
          } else {
            return bad(open.back() == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
          }
          break;
      }
      skip_ws();
    }
    result_.valid = true;
    return result_;
  }

 private:
  void emit(unsigned char c) {
    if (out_) out_->push_back(static_cast<char>(c));
    ++pos_;
  }
  void emit_span(std::size_t from, std::size_t to) {
    if (out_) out_->append(s_.data() + from, to - from);
    pos_ = to;
  }
  void skip_ws() {
    const std::size_t from = pos_;
    while (pos_ < s_.size() && is_ws(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    if (out_) out_->append(s_.data() + from, pos_ - from);
  }
  bool fail(const char* what) {
    result_.valid = false;
    result_.problem = what;
    result_.at = pos_;
    return false;
  }

  bool scalar() {
    const unsigned char c = s_[pos_];
    if (c == '"') return string();
    if (c == '-' || is_digit(c)) return number();
    for (std::string_view word : {"true", "false", "null"}) {
      if (s_.substr(pos_, word.size()) == word) {
        emit_span(pos_, pos_ + word.size());
        return true;
      }
    }
    return fail("expected a JSON value");
  }

  bool number() {
    const std::size_t from = pos_;
    std::size_t p = pos_;
    auto digits = [&] {
      const std::size_t start = p;
      while (p < s_.size() && is_digit(static_cast<unsigned char>(s_[p]))) ++p;
      return p > start;
    };
    if (s_[p] == '-') ++p;
    if (p < s_.size() && s_[p] == '0') {
      ++p;
    } else if (!digits()) {
      pos_ = p;
      return fail("invalid number");
    }
    if (p < s_.size() && s_[p] == '.') {
      ++p;
      if (!digits()) {
        pos_ = p;
        return fail("invalid number: digits expected after '.'");
      }
    }
    if (p < s_.size() && (s_[p] == 'e' || s_[p] == 'E')) {
      ++p;
      if (p < s_.size() && (s_[p] == '+' || s_[p] == '-')) ++p;
      if (!digits()) {
        pos_ = p;
        return fail("invalid number: digits expected in the exponent");
      }
    }
    emit_span(from, p);
    return true;
  }

  bool string() {
    emit('"');
    const unsigned char* base = reinterpret_cast<const unsigned char*>(s_.data());
    const unsigned char* end = base + s_.size();
    while (true) {
      // Copy the run of ordinary bytes in one go.
      std::size_t run = pos_;
      while (run < s_.size()) {
        const unsigned char c = base[run];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++run;
      }
      emit_span(pos_, run);
      if (pos_ >= s_.size()) return fail("unterminated string");
      const unsigned char c = base[pos_];
      if (c == '"') {
        emit(c);
        return true;
      }
      if (c >= 0x80) {
        const int n = utf8_sequence(base + pos_, end);
        if (n <= 0) return fail("invalid UTF-8 in string");
        emit_span(pos_, pos_ + static_cast<std::size_t>(n));
        continue;
      }
      if (c < 0x20) {
        if (!out_) return fail("raw control character in string");
        std::string escaped;
        append_json_string_body(std::string_view(s_.data() + pos_, 1), escaped);
        out_->append(escaped);
        ++pos_;
        ++result_.repairs;
        continue;
      }
      // Backslash escape.
      if (pos_ + 1 >= s_.size()) return fail("unterminated string");
      const unsigned char e = base[pos_ + 1];
      if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
          e == 't') {
        emit_span(pos_, pos_ + 2);
        continue;
      }
      if (e == 'u' && pos_ + 6 <= s_.size() && is_hex(base[pos_ + 2]) && is_hex(base[pos_ + 3]) &&
          is_hex(base[pos_ + 4]) && is_hex(base[pos_ + 5])) {
        emit_span(pos_, pos_ + 6);
        continue;
      }
      if (!out_) return fail("invalid escape in string");
      // A lone backslash (C:\Users): keep it as a literal backslash.
      out_->append("\\\\");
      ++pos_;
      ++result_.repairs;
    }
  }

  std::string_view s_;
  std::string* out_;
  std::size_t pos_ = 0;
  JsonCheck result_;
};

}  // namespace

std::size_t json_text_depth(std::string_view text) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

JsonCheck check_json(std::string_view text, std::string* repaired) {
  return Checker(text, repaired).run();
}

}  // namespace warren::toolcall::detail
