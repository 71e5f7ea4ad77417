// Config: the compiled-in defaults from configs/, with a user's file laid over them.
#include "default_config.hpp"
#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

namespace {

Result<Json> parse(const std::string& text, const std::string& where) {
  auto json = toolcall::parse_json(text);
  if (!json) return tl::unexpected(Error{where + ": " + json.error().message});
  return *json;
}

// Checks one model entry's fields and types, naming the first problem.
Result<ModelConfig> model_from(const std::string& name, const Json& entry) {
  if (!entry.is_object()) return tl::unexpected(Error{"model " + name + ": not an object"});
  ModelConfig m;
  m.name = name;
  try {
    const std::string backend = entry.at("backend").get<std::string>();
    const auto kind = backend_kind(backend);
    if (!kind)
      return tl::unexpected(Error{"model " + name + ": backend \"" + backend +
                                  "\" is not one of openai, anthropic, scripted, embedded"});
    m.backend = *kind;
    m.base_url = entry.value("base_url", "");
    m.model = entry.value("model", name);
    m.api_key_env = entry.value("api_key_env", "");
    m.context_window = entry.value("context_window", std::int64_t{1048576});
    m.max_output_tokens = entry.value("max_output_tokens", std::int64_t{32768});
    m.script = entry.value("script", "");
    m.weights = entry.value("weights", "");
    m.ca_file = entry.value("ca_file", "");
    m.connect_timeout_s = entry.value("connect_timeout_s", 10.0);
    m.idle_timeout_s = entry.value("idle_timeout_s", 300.0);
  } catch (const Json::exception& e) {
    return tl::unexpected(Error{"model " + name + ": " + e.what()});
  }
  const bool remote = m.backend == BackendKind::OpenAi || m.backend == BackendKind::Anthropic;
  if (remote && m.base_url.empty()) return tl::unexpected(Error{"model " + name + ": no base_url"});
  if (m.backend == BackendKind::Embedded && m.weights.empty())
    return tl::unexpected(Error{"model " + name + ": no weights (the checkpoint's folder)"});
  if (m.context_window <= 0 || m.max_output_tokens <= 0)
    return tl::unexpected(
        Error{"model " + name + ": context_window and max_output_tokens must be > 0"});
  return m;
}

}  // namespace

std::string to_string(BackendKind kind) {
  switch (kind) {
    case BackendKind::OpenAi:
      return "openai";
    case BackendKind::Anthropic:
      return "anthropic";
    case BackendKind::Scripted:
      return "scripted";
    case BackendKind::Embedded:
      return "embedded";
  }
  return "unknown";
}

std::optional<BackendKind> backend_kind(const std::string& name) {
  for (BackendKind kind :
       {BackendKind::OpenAi, BackendKind::Anthropic, BackendKind::Scripted, BackendKind::Embedded})
    if (to_string(kind) == name) return kind;
  return std::nullopt;
}

Result<Thinking> parse_thinking(const std::string& text) {
  if (text == "off") return Thinking::Off;
  if (text == "high") return Thinking::High;
  if (text == "max") return Thinking::Max;
  return tl::unexpected(Error{"thinking must be off, high or max, not \"" + text + "\""});
}

std::string to_string(Thinking thinking) {
  switch (thinking) {
    case Thinking::Off:
      return "off";
    case Thinking::High:
      return "high";
    case Thinking::Max:
      return "max";
  }
  return "high";
}

Result<Config> Config::load(const std::string& file) {
  Config c;
  auto models = parse(detail::kDefaultModels, "configs/models.json");
  auto prices = parse(detail::kDefaultPrices, "configs/prices.json");
  auto tools = parse(detail::kDefaultTools, "configs/tools/default.json");
  if (!models || !prices || !tools)
    return tl::unexpected(!models ? models.error() : !prices ? prices.error() : tools.error());
  c.models = (*models)["models"];
  c.default_model = (*models)["default"].get<std::string>();
  c.prices = (*prices)["prices"];
  c.tools = *tools;
  c.system_prompt = detail::kDefaultSystemPrompt;
  if (!file.empty()) {
    auto text = read_text_file(file, "the config");
    if (!text) return tl::unexpected(text.error());
    auto over = parse(*text, file);
    if (!over) return tl::unexpected(over.error());
    if (!over->is_object()) return tl::unexpected(Error{file + ": not a JSON object"});
    for (const auto& [key, value] : over->items()) {
      if (key == "models" && value.is_object()) {
        for (const auto& [name, entry] : value.items()) c.models[name] = entry;
      } else if (key == "prices" && value.is_object()) {
        for (const auto& [name, entry] : value.items()) c.prices[name] = entry;
      } else if (key == "default" && value.is_string()) {
        c.default_model = value.get<std::string>();
      } else if (key == "tools" && value.is_array()) {
        c.tools = value;
      } else if (key == "system_prompt" && value.is_string()) {
        c.system_prompt = value.get<std::string>();
      } else {
        return tl::unexpected(Error{file + ": unknown or mistyped key \"" + key +
                                    "\" (models, default, prices, tools, system_prompt)"});
      }
    }
    for (const auto& [name, entry] : c.models.items())
      if (auto m = model_from(name, entry); !m)
        return tl::unexpected(Error{file + ": " + m.error().message});
  }
  if (auto set = toolcall::ToolSet::from_json(c.tools); !set)
    return tl::unexpected(Error{"tools: " + set.error().message});
  return c;
}

Result<ModelConfig> Config::model(const std::string& name) const {
  const std::string wanted = name.empty() ? default_model : name;
  if (!models.contains(wanted)) {
    std::string known;
    for (const auto& [n, _] : models.items()) known += (known.empty() ? "" : ", ") + n;
    return tl::unexpected(Error{"unknown model \"" + wanted + "\" (configured: " + known + ")"});
  }
  return model_from(wanted, models[wanted]);
}

std::optional<Price> Config::price(const std::string& model) const {
  if (!prices.contains(model) || !prices[model].is_object()) return std::nullopt;
  const Json& p = prices[model];
  return Price{p.value("input", 0.0), p.value("input_cache_hit", 0.0), p.value("output", 0.0)};
}

double cost_usd(const Price& price, std::int64_t prompt_tokens, std::int64_t cached_tokens,
                std::int64_t completion_tokens) {
  const auto uncached =
      static_cast<double>(prompt_tokens > cached_tokens ? prompt_tokens - cached_tokens : 0);
  return (uncached * price.input + static_cast<double>(cached_tokens) * price.input_cache_hit +
          static_cast<double>(completion_tokens) * price.output) /
         1e6;
}

}  // namespace warren::orchestrator
