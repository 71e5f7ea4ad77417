// The eval report as one self-contained HTML page: inline CSS and SVG charts, nothing fetched.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string number(double value, const char* format = "%.1f") {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// Horizontal bars, one per (label, fraction 0..1, caption).
std::string bar_chart(const std::vector<std::tuple<std::string, double, std::string>>& bars) {
  const int row = 26, label_width = 180, bar_width = 360;
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" +
                    std::to_string(label_width + bar_width + 90) + "' height='" +
                    std::to_string(row * static_cast<int>(bars.size()) + 10) + "'>";
  int y = 5;
  for (const auto& [label, fraction, caption] : bars) {
    const int width = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * bar_width);
    svg +=
        "<text x='0' y='" + std::to_string(y + 16) + "' class='label'>" + escape(label) + "</text>";
    svg += "<rect x='" + std::to_string(label_width) + "' y='" + std::to_string(y + 3) +
           "' width='" + std::to_string(bar_width) + "' height='18' class='track'/>";
    svg += "<rect x='" + std::to_string(label_width) + "' y='" + std::to_string(y + 3) +
           "' width='" + std::to_string(width) + "' height='18' class='bar'/>";
    svg += "<text x='" + std::to_string(label_width + bar_width + 8) + "' y='" +
           std::to_string(y + 16) + "' class='label'>" + escape(caption) + "</text>";
    y += row;
  }
  return svg + "</svg>";
}

// A histogram of `values` in `bins` equal bins from 0 to the largest value.
std::string histogram(const std::vector<double>& values, int bins, const std::string& unit) {
  if (values.empty()) return "<p class='empty'>no data</p>";
  const double top = std::max(*std::max_element(values.begin(), values.end()), 1e-9);
  std::vector<int> counts(static_cast<std::size_t>(bins), 0);
  for (double v : values)
    counts[std::min(static_cast<std::size_t>(v / top * bins), counts.size() - 1)]++;
  const int most = *std::max_element(counts.begin(), counts.end());
  const int width = 540, height = 160, gap = 4, column = width / bins;
  std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(width) +
                    "' height='" + std::to_string(height + 40) + "'>";
  for (int i = 0; i < bins; ++i) {
    const int h = most ? counts[static_cast<std::size_t>(i)] * height / most : 0;
    svg += "<rect x='" + std::to_string(i * column) + "' y='" + std::to_string(height - h) +
           "' width='" + std::to_string(column - gap) + "' height='" + std::to_string(h) +
           "' class='bar'><title>" + std::to_string(counts[static_cast<std::size_t>(i)]) +
           " trials</title></rect>";
    if (counts[static_cast<std::size_t>(i)])
      svg += "<text x='" + std::to_string(i * column + 2) + "' y='" +
             std::to_string(height - h - 3) + "' class='small'>" +
             std::to_string(counts[static_cast<std::size_t>(i)]) + "</text>";
  }
  svg += "<text x='0' y='" + std::to_string(height + 18) + "' class='small'>0</text>";
  svg += "<text x='" + std::to_string(width - 90) + "' y='" + std::to_string(height + 18) +
         "' class='small'>" + escape(number(top, "%.3g") + " " + unit) + "</text>";
  return svg + "</svg>";
}

}  // namespace

std::string report_html(const Json& r) {
  std::vector<std::tuple<std::string, double, std::string>> categories;
  for (const auto& [name, c] : r["by_category"].items())
    categories.emplace_back(
        name, c["rate"].get<double>(),
        std::to_string(c["resolved"].get<int>()) + "/" + std::to_string(c["tasks"].get<int>()));
  std::vector<double> durations, costs;
  std::string rows;
  const std::string never_ran = to_string(FailureMode::EnvironmentError);
  for (const Json& t : r["tasks"]) {
    for (const Json& a : t["attempts"]) {
      // A trial that never ran took the harness's time, not the task's: not in the chart.
      if (a.value("failure_mode", "") != never_ran) durations.push_back(a.value("duration_s", 0.0));
      costs.push_back(a.value("cost_usd", 0.0));
    }
    const Json last = t["attempts"].empty() ? Json::object() : t["attempts"].back();
    const bool not_run = last.value("failure_mode", "") == never_ran;
    const std::string status = t["attempts"].empty()       ? "unfinished"
                               : t["resolved"].get<bool>() ? "resolved"
                               : not_run                   ? "not run"
                                                           : "failed";
    // A trial that never ran shows its whole reason (the instruction that blocked it).
    const std::string message = last.value("message", "");
    rows += "<tr class='" +
            std::string(status == "resolved" ? "ok"
                        : status == "failed" ? "bad"
                                             : "none") +
            "'><td>" + escape(t["name"].get<std::string>()) + "</td><td>" +
            escape(t["category"].get<std::string>()) + "</td><td>" + status + "</td><td>" +
            escape(last.value("failure_mode", "")) + "</td><td>" +
            escape(not_run ? message : message.substr(0, 160)) + "</td><td>" +
            std::to_string(t["attempts"].size()) + "</td><td>" +
            number(last.value("duration_s", 0.0)) + " s</td><td>$" +
            number(last.value("cost_usd", 0.0), "%.4f") + "</td></tr>\n";
  }
  std::string pass;
  for (const auto& [k, v] : r["pass_at_k"].items())
    pass += " &middot; " + k + " " + number(v.get<double>(), "%.3f");
  const Json& usage = r["usage"];
  std::string html = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>warren eval report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 2em; }
.summary span { display: inline-block; margin-right: 2em; }
.big { font-size: 28px; font-weight: 600; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; }
tr.ok td:nth-child(3) { color: #17803d; } tr.bad td:nth-child(3) { color: #b42318; }
svg .bar { fill: #3b6fd8; } svg .track { fill: #eef1f7; } svg .label { font-size: 13px; } svg .small { font-size: 11px; fill: #555; }
</style></head><body>
)";
  html += "<h1>warren eval: " + escape(r["suite"].get<std::string>()) + " (run " +
          std::to_string(r["run"].get<std::int64_t>()) + ")</h1>\n";
  html +=
      "<p class='summary'><span class='big'>" + number(100 * r["resolved_rate"].get<double>()) +
      "% resolved</span><span>" + std::to_string(r["resolved"].get<int>()) + " of " +
      std::to_string(r["tasks_run"].get<int>()) + " tasks" + pass + "</span><span>agent " +
      escape(r["settings"].value("agent", "")) + ", model " +
      escape(r["settings"].value("model", "")) + "</span><span>" +
      std::to_string(r["trials"].get<int>()) + " trials, " +
      std::to_string(usage.value("prompt_tokens", 0LL) + usage.value("completion_tokens", 0LL)) +
      " tokens, $" + number(usage.value("cost_usd", 0.0), "%.4f") + "</span></p>\n";
  html += "<h2>Resolved rate by category</h2>\n" + bar_chart(categories) + "\n";
  html += "<h2>Trial durations</h2>\n" + histogram(durations, 12, "s") + "\n";
  html += "<h2>Cost per trial</h2>\n" + histogram(costs, 12, "USD") + "\n";
  html +=
      "<h2>Tasks</h2>\n<table><tr><th>task</th><th>category</th><th>status</th><th>failure</"
      "th><th>message</th>"
      "<th>attempts</th><th>duration</th><th>cost</th></tr>\n" +
      rows + "</table>\n</body></html>\n";
  return html;
}

}  // namespace warren::eval
