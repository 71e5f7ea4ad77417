#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <cmath>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "model_calls.hpp"

namespace warren::orchestrator::detail {

namespace {

const char* kind_name(FailureKind kind) {
  switch (kind) {
    case FailureKind::RateLimited:
      return "rate limited";
    case FailureKind::Server:
      return "server error";
    case FailureKind::Timeout:
      return "timed out";
    case FailureKind::Dropped:
      return "stream dropped";
    case FailureKind::Network:
      return "network error";
    case FailureKind::BadRequest:
      return "bad request";
    case FailureKind::Auth:
      return "not authorised";
    case FailureKind::NotFound:
      return "not found";
    case FailureKind::Protocol:
      return "unreadable answer";
  }
  return "failure";
}

std::string describe(const ModelFailure& f) {
  std::string text = kind_name(f.kind);
  if (f.http_status) text += " (HTTP " + std::to_string(f.http_status) + ")";
  if (!f.message.empty()) text += ": " + f.message;
  return text;
}

}  // namespace

Pricing::Pricing(const Config& config, const ModelBackend& backend, Observer* observer)
    : price_(config.price(backend.model())) {
  const std::string model = backend.model();
  // Replayed and in-process models cost nothing: no warning for them.
  if (!price_ && observer && backend.backend() != BackendKind::Scripted &&
      backend.backend() != BackendKind::Embedded)
    observer->on_warning("no price for model \"" + model +
                         "\" in the price table: its cost is counted as 0");
}

double Pricing::cost(const Usage& u) const {
  return price_ ? cost_usd(*price_, u.prompt_tokens, u.cached_tokens, u.completion_tokens) : 0.0;
}

std::chrono::milliseconds backoff(const RetryPolicy& policy, int retry, const ModelFailure& failure,
                                  std::mt19937& random) {
  if (failure.retry_after)
    return std::min(*failure.retry_after, std::chrono::milliseconds(std::chrono::minutes(10)));
  const double base = static_cast<double>(policy.base_delay.count()) * std::pow(2.0, retry - 1);
  const double capped = std::min(base, static_cast<double>(policy.max_delay.count()));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(capped * jitter(random)));
}

boost::asio::awaitable<ModelResult> call_model(ModelBackend& backend, ModelRequest request,
                                               const RetryPolicy& policy, const Pricing& pricing,
                                               std::vector<storage::ModelCall>& calls,
                                               Observer* observer, Deadline deadline,
                                               bool& out_of_time) {
  std::mt19937 random(std::random_device{}());
  std::string last_failure;
  int same_in_a_row = 0;
  for (int attempt = 0;; ++attempt) {
    const auto start = std::chrono::steady_clock::now();
    ModelRequest copy = request;
    ModelResult result = co_await backend.complete(std::move(copy));
    storage::ModelCall call{
        .attempt = attempt, .backend = to_string(backend.backend()), .model = backend.model()};
    call.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (result) {
      call.prompt_tokens = result->usage.prompt_tokens;
      call.completion_tokens = result->usage.completion_tokens;
      call.cached_tokens = result->usage.cached_tokens;
      call.cost_usd = pricing.cost(result->usage);
      calls.push_back(std::move(call));
      co_return result;
    }
    const ModelFailure& failure = result.error();
    const std::string described = describe(failure);
    call.error = described;
    calls.push_back(std::move(call));
    same_in_a_row = described == last_failure ? same_in_a_row + 1 : 1;
    last_failure = described;
    // A server that fails the same way again and again is failing deterministically (a request
    // it cannot serve); rate limiting is expected to repeat until the wait is long enough.
    const bool stuck =
        failure.kind != FailureKind::RateLimited && same_in_a_row >= policy.same_failure_limit;
    if (!failure.retryable() || attempt + 1 >= policy.max_attempts || stuck) co_return result;
    const auto wait = backoff(policy, attempt + 1, failure, random);
    if (deadline != Deadline::max() && std::chrono::steady_clock::now() + wait >= deadline) {
      out_of_time = true;
      co_return result;
    }
    if (observer)
      observer->on_warning(described + "; retrying in " + std::to_string(wait.count()) + " ms");
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, wait);
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace warren::orchestrator::detail

namespace warren::orchestrator {

bool ModelFailure::retryable() const {
  switch (kind) {
    case FailureKind::RateLimited:
    case FailureKind::Server:
    case FailureKind::Timeout:
    case FailureKind::Dropped:
    case FailureKind::Network:
      return true;
    default:
      return false;
  }
}

}  // namespace warren::orchestrator
