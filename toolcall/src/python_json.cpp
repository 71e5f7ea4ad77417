#include "python_json.hpp"

#include "utf8.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

namespace warren::toolcall::detail {

namespace {

// Bytes json.dumps escapes: '"', '\\' and everything below 0x20.
constexpr bool needs_escape(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\';
}

void append_escape(unsigned char c, std::string& out) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";  // json.dumps writes lowercase hex
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(esc, 6);
    }
  }
}

}  // namespace

void append_json_string_body(std::string_view text, std::string& out) {
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    const char* run = p;
    while (p < end && !needs_escape(static_cast<unsigned char>(*p))) ++p;
    out.append(run, static_cast<std::size_t>(p - run));
    if (p < end) append_escape(static_cast<unsigned char>(*p++), out);
  }
}

std::size_t json_plain_prefix(std::string_view text) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = begin + text.size();
  const unsigned char* p = begin;
  while (p < end) {
    const unsigned char c = *p;
    if (c < 0x80) {
      if (c < 0x20 || c == '"' || c == '\\') break;
      ++p;
      continue;
    }
    const int n = utf8_sequence(p, end);
    if (n <= 0) break;
    p += n;
  }
  return static_cast<std::size_t>(p - begin);
}

bool append_json_string_body_checked(std::string_view text, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  out.reserve(out.size() + text.size() + 8);
  while (p < end) {
    const unsigned char* run = p;
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') ++p;
    out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == end) break;
    if (*p >= 0x80) {
      const int n = utf8_sequence(p, end);
      if (n <= 0) return false;
      out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      p += n;
    } else {
      append_escape(*p++, out);
    }
  }
  return true;
}

void append_json_string(std::string_view text, std::string& out) {
  out += '"';
  append_json_string_body(text, out);
  out += '"';
}

void append_python_float(double value, std::string& out) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Infinity" : "Infinity";
    return;
  }
  // Shortest round-trip digits in scientific form: [-]d[.ddd]e[+-]x
  char sci[64];
  auto [end, ec] = std::to_chars(sci, sci + sizeof sci, value, std::chars_format::scientific);
  (void)ec;
  std::string_view s(sci, static_cast<std::size_t>(end - sci));
  const bool negative = s.front() == '-';
  if (negative) s.remove_prefix(1);
  const std::size_t e_pos = s.find('e');
  std::string digits;
  for (char c : s.substr(0, e_pos))
    if (c != '.') digits += c;
  int exponent = 0;
  std::from_chars(s.data() + e_pos + 1 + (s[e_pos + 1] == '+'), s.data() + s.size(), exponent);

  if (negative) out += '-';
  // CPython float_repr_style 'short': exponent notation when decpt <= -4 or decpt > 16,
  // where decpt = exponent + 1 is the decimal point's position after the first digit.
  const int decpt = exponent + 1;
  if (decpt <= -4 || decpt > 16) {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  } else if (decpt <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-decpt), '0');
    out += digits;
  } else if (static_cast<std::size_t>(decpt) >= digits.size()) {
    out += digits;
    out.append(static_cast<std::size_t>(decpt) - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, static_cast<std::size_t>(decpt));
    out += '.';
    out.append(digits, static_cast<std::size_t>(decpt));
  }
}

void append_python_json(const Json& root, std::string& out) {
  // Iterative: request JSON comes from users and may nest deeply.
  struct Frame {
    const Json* container;
    std::size_t next;  // index of the next child to write
  };
  std::vector<Frame> stack;
  auto write_scalar_or_open = [&](const Json& v) {
    switch (v.type()) {
      case Json::value_t::null:
        out += "null";
        break;
      case Json::value_t::boolean:
        out += v.get<bool>() ? "true" : "false";
        break;
      case Json::value_t::number_integer:
        out += std::to_string(v.get<std::int64_t>());
        break;
      case Json::value_t::number_unsigned:
        out += std::to_string(v.get<std::uint64_t>());
        break;
      case Json::value_t::number_float:
        append_python_float(v.get<double>(), out);
        break;
      case Json::value_t::string:
        append_json_string(v.get_ref<const std::string&>(), out);
        break;
      case Json::value_t::object:
        out += '{';
        stack.push_back({&v, 0});
        break;
      case Json::value_t::array:
        out += '[';
        stack.push_back({&v, 0});
        break;
      default:
        out += "null";
        break;  // binary and discarded values never come from JSON text
    }
  };
  write_scalar_or_open(root);
  while (!stack.empty()) {
    Frame& top = stack.back();
    const Json& c = *top.container;
    if (top.next == c.size()) {
      out += c.is_object() ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (top.next > 0) out += ", ";
    if (c.is_object()) {
      // ordered_json keeps members in a vector: indexing by position is constant time.
      const auto& members = c.get_ref<const Json::object_t&>();
      const auto& entry = *(members.begin() + static_cast<std::ptrdiff_t>(top.next));
      ++top.next;
      append_json_string(entry.first, out);
      out += ": ";
      write_scalar_or_open(entry.second);  // may push: `top` is not used after this
    } else {
      const Json& child = c[top.next];
      ++top.next;
      write_scalar_or_open(child);
    }
  }
}

bool nests_deeper_than(const Json& root, std::size_t limit) {
  std::vector<std::pair<const Json*, std::size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    const auto [v, depth] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    if (depth > limit) return true;
    for (const Json& child : *v) stack.emplace_back(&child, depth + 1);
  }
  return false;
}

std::string python_json(const Json& value) {
  std::string out;
  append_python_json(value, out);
  return out;
}

}  // namespace warren::toolcall::detail
