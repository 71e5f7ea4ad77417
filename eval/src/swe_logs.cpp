// The SWE-bench harness's log parsers (swebench/harness/log_parsers/python.py): a test run's
// output, between the harness's markers, read into test ids and statuses the way each
// repository's parser reads it, so that an instance's FAIL_TO_PASS and PASS_TO_PASS ids (which
// those parsers produced) are found as they were written. The rules are the harness's, quirks
// included; the code is this file's own.
#include <array>
#include <cctype>
#include <map>
#include <optional>
#include <string_view>

#include "swe.hpp"

namespace warren::eval::detail {

namespace {

using StatusMap = std::map<std::string, std::string>;

constexpr std::string_view kWhitespace = " \t\n\r\f\v";
constexpr std::array<std::string_view, 5> kStatuses = {"FAILED", "PASSED", "SKIPPED", "ERROR",
                                                       "XFAIL"};

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find('\n', start);
    lines.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return lines;
    start = end + 1;
  }
}

// Python's str.split(): words between runs of whitespace.
std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  for (std::size_t at = line.find_first_not_of(kWhitespace); at != std::string_view::npos;) {
    const std::size_t end = line.find_first_of(kWhitespace, at);
    out.emplace_back(line.substr(at, end == std::string_view::npos ? end : end - at));
    at = end == std::string_view::npos ? end : line.find_first_not_of(kWhitespace, end);
  }
  return out;
}

std::string_view strip(std::string_view s) {
  const std::size_t first = s.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kWhitespace) - first + 1);
}

std::string join(const std::vector<std::string>& parts, std::size_t from, std::size_t to) {
  std::string joined;
  for (std::size_t i = from; i < to; ++i) joined += (i > from ? " " : "") + parts[i];
  return joined;
}

std::string replace_all(const std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t at = 0;
  for (std::size_t found; (found = s.find(from, at)) != std::string::npos;
       at = found + from.size()) {
    out.append(s, at, found - at);
    out.append(to);
  }
  out.append(s, at, std::string::npos);
  return out;
}

bool starts_with_status(std::string_view line) {
  for (std::string_view s : kStatuses)
    if (line.starts_with(s)) return true;
  return false;
}

// pytest's "SKIPPED [N] path:line: reason" summary, where [N] is a count, not a test.
bool skip_summary(const std::string& status, const std::string& name) {
  if (status != "SKIPPED" || name.size() < 3 || name.front() != '[' || name.back() != ']')
    return false;
  return name.find_first_not_of("0123456789", 1) == name.size() - 1;
}

// The short test summary lines, "STATUS id" (FAILED lines with " - " made spaces); `rename` may
// rewrite the id.
template <class Rename>
StatusMap parse_pytest(std::string_view log, Rename rename) {
  StatusMap map;
  for (std::string_view raw : split_lines(log)) {
    std::string line(raw);
    if (!starts_with_status(line)) continue;
    if (line.starts_with("FAILED")) line = replace_all(line, " - ", " ");
    const auto parts = words(line);
    if (parts.size() <= 1 || skip_summary(parts[0], parts[1])) continue;
    map[rename(parts[1])] = parts[0];
  }
  return map;
}

// "name[option]": an option that is a path keeps only its last part (requests', pylint's and
// pydicom's ids name files by their base name).
std::string without_option_path(const std::string& id) {
  const std::size_t open = id.find('['), close = id.rfind(']');
  if (open == std::string::npos || close == std::string::npos || close < open) return id;
  std::string option = id.substr(open + 1, close - open - 1);
  if (option.starts_with("/") && !option.starts_with("//") && option.find('*') == std::string::npos)
    option = "/" + option.substr(option.rfind('/') + 1);
  return id.substr(0, open) + "[" + option + "]";
}

StatusMap parse_pytest_v2(std::string_view log) {
  StatusMap map;
  for (std::string_view raw : split_lines(log)) {
    // Colour codes go: "[31m" first, then every control character (the escapes, tabs too).
    std::string line;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '[') {
        std::size_t j = i + 1;
        while (j < raw.size() && std::isdigit(static_cast<unsigned char>(raw[j]))) ++j;
        if (j > i + 1 && j < raw.size() && raw[j] == 'm') {
          i = j;
          continue;
        }
      }
      if (raw[i] >= 1 && raw[i] < 32) continue;
      line += raw[i];
    }
    if (starts_with_status(line)) {
      if (line.starts_with("FAILED")) line = line.substr(0, line.find(" - "));
      const auto parts = words(line);
      if (parts.size() >= 2 && !skip_summary(parts[0], parts[1]))
        map[join(parts, 1, parts.size())] = parts[0];
    } else {
      for (std::string_view s : kStatuses)
        if (line.ends_with(s)) {
          const auto parts = words(line);
          if (parts.size() >= 2) map[join(parts, 0, parts.size() - 1)] = parts.back();
          break;
        }
    }
  }
  return map;
}

StatusMap parse_seaborn(std::string_view log) {
  StatusMap map;
  for (std::string_view line : split_lines(log)) {
    const auto parts = words(line);
    if (parts.size() < 2) continue;
    if (line.starts_with("FAILED"))
      map[parts[1]] = "FAILED";
    else if (line.find(" PASSED ") != std::string_view::npos) {
      if (parts[1] == "PASSED") map[parts[0]] = "PASSED";
    } else if (line.starts_with("PASSED"))
      map[parts[1]] = "PASSED";
  }
  return map;
}

// The harness's pattern "(_*) (.*)\.py:(.*) (_*)" over one line, every match (its findall): the
// headers of sympy's failure reports, "____ sympy/x/tests/test_y.py:test_z ____".
void sympy_failure_headers(std::string_view line, StatusMap& map) {
  for (std::size_t from = 0; from < line.size();) {
    // The leftmost start: underscores (maybe none) and then a space.
    std::size_t space = std::string_view::npos;
    for (std::size_t s = from; s < line.size(); ++s) {
      std::size_t q = s;
      while (q < line.size() && line[q] == '_') ++q;
      if (q < line.size() && line[q] == ' ') {
        space = q;
        break;
      }
    }
    if (space == std::string_view::npos) return;
    // Greedy groups: the last ".py:" with a space after it, then the last space.
    const std::size_t last_space = line.rfind(' ');
    if (last_space == std::string_view::npos || last_space < space + 5) return;
    const std::size_t py = line.rfind(".py:", last_space - 4);
    if (py == std::string_view::npos || py < space + 1) return;
    std::string id(line.substr(space + 1, py - space - 1));
    id += ".py:";
    id += line.substr(py + 4, last_space - py - 4);
    map[id] = "FAILED";
    std::size_t end = last_space + 1;
    while (end < line.size() && line[end] == '_') ++end;
    from = end;
  }
}

StatusMap parse_sympy(std::string_view log) {
  StatusMap map;
  for (std::string_view line : split_lines(log)) sympy_failure_headers(line, map);
  for (std::string_view raw : split_lines(log)) {
    const std::string_view line = strip(raw);
    if (!line.starts_with("test_")) continue;
    const std::string test = words(line)[0];
    if (line.ends_with(" E")) map[test] = "ERROR";
    if (line.ends_with(" F")) map[test] = "FAILED";
    if (line.ends_with(" ok")) map[test] = "PASSED";
  }
  return map;
}

bool is_space(char c) {
  return kWhitespace.find(c) != std::string_view::npos;
}

// Where `line` has "\s...\s" followed by `then`, first; npos when it has none.
std::size_t ellipsis_before(std::string_view line, std::string_view then) {
  for (std::size_t p = 0; p + 5 + then.size() <= line.size(); ++p)
    if (is_space(line[p]) && line.substr(p + 1, 3) == "..." && is_space(line[p + 4]) &&
        line.substr(p + 5, then.size()) == then)
      return p;
  return std::string_view::npos;
}

// The harness's three patterns for a test whose "ok" Django's logging pushed onto a line of its
// own: "NAME ... Testing against Django installed in ... silenced).\nok", "NAME ... Internal
// Server Error: /PATH/\nok" and "NAME ... System check identified no issues (0 silenced)\nok".
void django_interrupted(std::string_view log, StatusMap& map) {
  const auto lines = split_lines(log);
  auto ok_line = [&](std::size_t i) { return i + 1 < lines.size() && lines[i + 1] == "ok"; };
  std::size_t offset = 0;  // of lines[i] in log
  for (std::size_t i = 0; i < lines.size(); offset += lines[i].size() + 1, ++i) {
    const std::string_view line = lines[i];
    constexpr std::string_view kChecks = "System check identified no issues (0 silenced)";
    if (line.size() >= kChecks.size() + 5 && line.ends_with(kChecks) && ok_line(i)) {
      const std::size_t p = line.size() - kChecks.size() - 5;
      if (ellipsis_before(line.substr(p), kChecks) == 0)
        map[std::string(line.substr(0, p))] = "PASSED";
    }
    constexpr std::string_view kServerError = "Internal Server Error: /";
    if (const std::size_t p = ellipsis_before(line, kServerError);
        p != std::string_view::npos && ok_line(i) && line.ends_with('/') &&
        line.size() >= p + 5 + kServerError.size() + 1)
      map[std::string(line.substr(0, p))] = "PASSED";
    constexpr std::string_view kInstalled = "Testing against Django installed in ";
    if (const std::size_t p = ellipsis_before(line, kInstalled); p != std::string_view::npos) {
      constexpr std::string_view kEnd = " silenced).\nok";
      for (std::size_t at = log.find(kEnd, offset + p + 5 + kInstalled.size());
           at != std::string_view::npos; at = log.find(kEnd, at + 1)) {
        const std::size_t after = at + kEnd.size();
        if (after == log.size() || log[after] == '\n') {
          map[std::string(line.substr(0, p))] = "PASSED";
          break;
        }
      }
    }
  }
}

StatusMap parse_django_log(std::string_view log) {
  StatusMap map;
  std::optional<std::string> previous;  // the last test named before " ... "
  for (std::string_view raw : split_lines(log)) {
    std::string line(strip(raw));
    if (line.find("--version is equivalent to version") != std::string::npos)
      map["--version is equivalent to version"] = "PASSED";
    if (const std::size_t at = line.find(" ... "); at != std::string::npos)
      previous = line.substr(0, at);
    for (std::string_view suffix : {" ... ok", " ... OK", " ...  OK"}) {
      if (!line.ends_with(suffix)) continue;
      // django__django-7188: a migration's output runs into the test's line.
      if (line.starts_with("Applying sites.0002_alter_domain_unique...test_no_migrations"))
        line = std::string(strip(line.substr(line.find("...") + 3)));
      map[line.substr(0, line.rfind(suffix))] = "PASSED";
      break;
    }
    if (const std::size_t at = line.find(" ... skipped"); at != std::string::npos)
      map[line.substr(0, at)] = "SKIPPED";
    if (line.ends_with(" ... FAIL")) map[line.substr(0, line.find(" ... FAIL"))] = "FAILED";
    if (line.ends_with(" ... ERROR")) map[line.substr(0, line.find(" ... ERROR"))] = "ERROR";
    for (std::string_view label : {"FAIL:", "ERROR:"})
      if (line.starts_with(label))
        if (const auto parts = words(line); parts.size() > 1)
          map[parts[1]] = label == "FAIL:" ? "FAILED" : "ERROR";
    if (line.starts_with("ok") && previous) map[*previous] = "PASSED";
  }
  django_interrupted(log, map);
  return map;
}

}  // namespace

std::optional<SweLogParser> swe_log_parser_named(const std::string& name) {
  static const std::map<std::string, SweLogParser> kNames = {
      {"pytest", SweLogParser::Pytest},         {"pytest_options", SweLogParser::PytestOptions},
      {"pytest_v2", SweLogParser::PytestV2},    {"django", SweLogParser::Django},
      {"sympy", SweLogParser::Sympy},           {"seaborn", SweLogParser::Seaborn},
      {"matplotlib", SweLogParser::Matplotlib},
  };
  const auto found = kNames.find(name);
  if (found == kNames.end()) return std::nullopt;
  return found->second;
}

std::vector<TestResult> parse_swe_log(SweLogParser parser, const std::string& log) {
  StatusMap map;
  switch (parser) {
    case SweLogParser::Pytest:
      map = parse_pytest(log, [](const std::string& id) { return id; });
      break;
    case SweLogParser::PytestOptions:
      map = parse_pytest(log, without_option_path);
      break;
    case SweLogParser::Matplotlib: {
      const std::string named =
          replace_all(replace_all(log, "MouseButton.LEFT", "1"), "MouseButton.RIGHT", "3");
      map = parse_pytest(named, [](const std::string& id) { return id; });
      break;
    }
    case SweLogParser::PytestV2:
      map = parse_pytest_v2(log);
      break;
    case SweLogParser::Django:
      map = parse_django_log(log);
      break;
    case SweLogParser::Sympy:
      map = parse_sympy(log);
      break;
    case SweLogParser::Seaborn:
      map = parse_seaborn(log);
      break;
  }
  std::vector<TestResult> results;
  for (auto& [id, status] : map) results.push_back({id, id, status});
  return results;
}

}  // namespace warren::eval::detail
