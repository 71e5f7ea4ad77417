// `warren runs list|show|export`: what the database holds.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "io.hpp"
#include "run_commands.hpp"
#include "warren/storage/storage.hpp"

namespace warren::cli {

namespace {

using Json = nlohmann::ordered_json;

struct RunsFlags {
  std::string db = ".warren/warren.db", format = "json", out;
  std::int64_t id = 0;
  bool json = false;
};

int fail(const std::string& command, const std::string& message) {
  std::cerr << "warren runs " << command << ": " << message << "\n";
  return 2;
}

std::string when(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &utc);
  return text;
}

Json summary_json(const storage::RunSummary& s) {
  return {{"id", s.run.id},
          {"kind", s.run.kind},
          {"name", s.run.name},
          {"status", s.run.status},
          {"created_ms", s.run.created_ms},
          {"tasks", s.tasks},
          {"trials", s.trials},
          {"finished", s.finished},
          {"resolved", s.resolved},
          {"steps", s.steps},
          {"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"cached_tokens", s.cached_tokens},
          {"cost_usd", s.cost_usd}};
}

int list(const RunsFlags& f) {
  auto store = storage::Store::open(f.db);
  if (!store) return fail("list", store.error().message);
  auto runs = (*store)->list_runs();
  if (!runs) return fail("list", runs.error().message);
  if (f.json) {
    Json all = Json::array();
    for (const auto& s : *runs) all.push_back(summary_json(s));
    write_stdout(json_text(all, 2) + "\n");
    return 0;
  }
  std::printf("%-5s %-5s %-9s %-17s %7s %8s %6s %10s %9s  %s\n", "id", "kind", "status", "created",
              "trials", "resolved", "steps", "tokens", "cost", "name");
  for (const auto& s : *runs)
    std::printf("%-5lld %-5s %-9s %-17s %7d %8d %6lld %10lld %9.4f  %s\n",
                static_cast<long long>(s.run.id), s.run.kind.c_str(), s.run.status.c_str(),
                when(s.run.created_ms).c_str(), s.trials, s.resolved,
                static_cast<long long>(s.steps),
                static_cast<long long>(s.prompt_tokens + s.completion_tokens), s.cost_usd,
                printable(s.run.name).c_str());
  return 0;
}

int show(const RunsFlags& f) {
  auto store = storage::Store::open(f.db);
  if (!store) return fail("show", store.error().message);
  auto run = storage::export_run_json(**store, f.id);
  if (!run) return fail("show", run.error().message);
  if (f.json) {
    write_stdout(json_text(*run, 2) + "\n");
    return 0;
  }
  const Json& r = (*run)["run"];
  std::printf("run %lld (%s) %s: %s\n", static_cast<long long>(f.id),
              r["kind"].get<std::string>().c_str(), r["status"].get<std::string>().c_str(),
              printable(r["name"].get<std::string>()).c_str());
  for (const Json& t : (*run)["trials"]) {
    std::printf("  trial %lld attempt %d: %s, %zu steps%s\n",
                static_cast<long long>(t["id"].get<std::int64_t>()), t["attempt"].get<int>(),
                t["status"] == "finished" ? t["exit_status"].get<std::string>().c_str() : "running",
                t["steps"].size(),
                t["resolved"].is_boolean()
                    ? (t["resolved"].get<bool>() ? ", resolved" : ", not resolved")
                    : "");
    for (const Json& s : t["steps"]) {
      std::string tools;
      for (const Json& c : s["tool_calls"])
        tools += (tools.empty() ? "" : ", ") + c["name"].get<std::string>();
      std::printf("    step %d: %s\n", s["step"].get<int>() + 1,
                  tools.empty() ? "(no tool call)" : printable(tools).c_str());
    }
  }
  return 0;
}

int export_run(const RunsFlags& f) {
  auto store = storage::Store::open(f.db);
  if (!store) return fail("export", store.error().message);
  Json out;
  if (f.format == "json") {
    auto run = storage::export_run_json(**store, f.id);
    if (!run) return fail("export", run.error().message);
    out = std::move(*run);
  } else {
    auto trials = (*store)->load_trials(f.id);
    if (!trials) return fail("export", trials.error().message);
    if (trials->empty() && !(*store)->load_run(f.id))
      return fail("export", "no run " + std::to_string(f.id));
    Json all = Json::array();
    for (const auto& t : *trials) {
      auto atif = storage::export_trial_atif(**store, t.id);
      if (!atif) return fail("export", atif.error().message);
      all.push_back(std::move(*atif));
    }
    out = all.size() == 1 ? all[0] : all;  // one trajectory per trial; a single run is one
  }
  const std::string text = json_text(out, 2) + "\n";
  if (f.out.empty()) {
    write_stdout(text);
  } else if (!(std::ofstream(f.out, std::ios::binary) << text)) {
    return fail("export", "cannot write " + f.out);
  }
  return 0;
}

}  // namespace

void add_runs_commands(CLI::App& app, int& exit_code) {
  auto f = std::make_shared<RunsFlags>();
  CLI::App* runs =
      app.add_subcommand("runs", "what the database holds: runs, trials, trajectories");
  runs->require_subcommand(1);
  runs->add_option("--db", f->db, "the database (default .warren/warren.db)");

  CLI::App* ls = runs->add_subcommand("list", "every run with its totals");
  ls->add_flag("--json", f->json, "print JSON");
  ls->callback([f, &exit_code] { exit_code = list(*f); });

  CLI::App* sh = runs->add_subcommand("show", "one run: its trials and their steps");
  sh->add_option("ID", f->id, "the run")->required();
  sh->add_flag("--json", f->json, "print the whole run as JSON");
  sh->callback([f, &exit_code] { exit_code = show(*f); });

  CLI::App* ex = runs->add_subcommand("export", "one run's trajectories");
  ex->add_option("ID", f->id, "the run")->required();
  ex->add_option("--format", f->format, "atif (Harbor's trajectory format) or json")
      ->check(CLI::IsMember({"atif", "json"}));
  ex->add_option("--out", f->out, "write to this file instead of stdout");
  ex->callback([f, &exit_code] { exit_code = export_run(*f); });
}

}  // namespace warren::cli
