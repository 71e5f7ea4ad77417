// make_backend: the backend a model's configuration names.
#include <unistd.h>

#include <cstdlib>

#include "http_backends.hpp"

namespace warren::orchestrator {

namespace detail {

HttpTimeouts timeouts_of(const ModelConfig& config) {
  return HttpTimeouts{
      std::chrono::milliseconds(static_cast<std::int64_t>(config.connect_timeout_s * 1000)),
      std::chrono::milliseconds(static_cast<std::int64_t>(config.idle_timeout_s * 1000))};
}

boost::asio::awaitable<tl::expected<void, ModelFailure>> HostedBackend::post_events(
    std::string target, Headers headers, std::string body, const OnEvent& on_event) {
  HttpPost post{endpoint_, std::move(target), std::move(headers), std::move(body),
                timeouts_of(config_)};
  SseReader sse(on_event);
  // Named, not a temporary in the co_await expression (GCC 12 destroys those twice).
  const std::function<bool(std::string_view)> on_body = [&](std::string_view bytes) {
    return sse.feed(bytes);
  };
  auto sent = co_await http_.post_streaming(post, on_body);
  if (sent) sse.feed("\n\n");  // a last event without its blank line
  co_return sent;
}

boost::asio::awaitable<Result<void>> HostedBackend::check_reachable() {
  auto reached = co_await http_.probe(endpoint_, timeouts_of(config_));
  if (!reached)
    co_return tl::unexpected(
        Error{"cannot reach " + config_.base_url + ": " + reached.error().message});
  co_return Result<void>{};
}

void check_calls(std::vector<toolcall::ParsedToolCall>& calls, const std::vector<Json>& tools) {
  auto set = toolcall::ToolSet::from_json(Json(tools));
  for (toolcall::ParsedToolCall& call : calls) {
    auto arguments = toolcall::parse_json(call.arguments.empty() ? "{}" : call.arguments);
    if (!arguments || !arguments->is_object()) {
      call.errors.push_back("the arguments are not a JSON object" +
                            (arguments ? std::string() : ": " + arguments.error().message));
      continue;
    }
    if (call.arguments.empty()) call.arguments = "{}";
    if (!set) continue;
    if (!set->contains(call.name)) {
      call.errors.push_back("there is no tool named \"" + call.name + "\"");
      continue;
    }
    for (std::string& problem : set->check_arguments(call.name, *arguments))
      call.errors.push_back(std::move(problem));
  }
}

}  // namespace detail

Result<std::unique_ptr<ModelBackend>> make_backend(const ModelConfig& config,
                                                   boost::asio::any_io_executor executor) {
  if (config.backend == BackendKind::Scripted) {
    if (config.script.empty()) return tl::unexpected(Error{"model " + config.name + ": no script"});
    return make_scripted_backend(config.script);
  }
  if (config.backend == BackendKind::Embedded) return make_embedded_backend(config);
  std::string key;
  if (!config.api_key_env.empty()) {
    const char* value = std::getenv(config.api_key_env.c_str());
    if (!value || !*value)
      return tl::unexpected(Error{"the API key for " + config.name + " is missing: set " +
                                  config.api_key_env +
                                  " (or name another variable with --api-key-env)"});
    key = value;
  }
  if (!config.ca_file.empty() && access(config.ca_file.c_str(), R_OK) != 0)
    return tl::unexpected(
        Error{"model " + config.name + ": cannot read ca_file " + config.ca_file});
  auto endpoint = detail::parse_base_url(config.base_url);
  if (!endpoint)
    return tl::unexpected(Error{"model " + config.name + ": " + endpoint.error().message});
  if (config.backend == BackendKind::OpenAi)
    return detail::make_openai_backend(config, *endpoint, std::move(key), std::move(executor));
  return detail::make_anthropic_backend(config, *endpoint, std::move(key), std::move(executor));
}

}  // namespace warren::orchestrator
