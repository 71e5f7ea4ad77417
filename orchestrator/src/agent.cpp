// The agent loop. One step: make room in the context, ask the model (with retries), run the tool
// calls, record the step durably, then decide whether to go on. Policy lives around it:
// limits (below), retries (model_calls.cpp), context (conversation.cpp), tools (tools.cpp).
#include "conversation.hpp"
#include "model_calls.hpp"
#include "tools.hpp"

namespace warren::orchestrator {

std::string to_string(ExitStatus status) {
  switch (status) {
    case ExitStatus::Submitted:
      return "submitted";
    case ExitStatus::ExitSteps:
      return "exit_steps";
    case ExitStatus::ExitCost:
      return "exit_cost";
    case ExitStatus::ExitTime:
      return "exit_time";
    case ExitStatus::ExitContext:
      return "exit_context";
    case ExitStatus::ExitFormat:
      return "exit_format";
    case ExitStatus::ExitApi:
      return "exit_api";
    case ExitStatus::ExitEnvironment:
      return "exit_environment";
    case ExitStatus::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

namespace {

using detail::Conversation;

constexpr const char* kNoToolCall =
    "Your answer called no tool. Every answer must call at least one tool; call `submit` when the "
    "task is done.";

// What the trial has used so far.
struct Tally {
  int steps = 0;
  Usage usage;
  double cost_usd = 0;
  int format_errors = 0;  // consecutive

  void add(const storage::Step& step) {
    ++steps;
    for (const storage::ModelCall& m : step.model_calls) {
      usage.prompt_tokens += m.prompt_tokens;
      usage.completion_tokens += m.completion_tokens;
      usage.cached_tokens += m.cached_tokens;
      cost_usd += m.cost_usd;
    }
    format_errors = step.tool_calls.empty() ? format_errors + 1 : 0;
  }
  std::int64_t tokens() const { return usage.prompt_tokens + usage.completion_tokens; }

  AgentOutcome end(ExitStatus status, std::string message = "") const {
    return AgentOutcome{status, std::move(message), steps, usage, cost_usd};
  }
};

// The limit the trial has reached before its next step, if any.
std::optional<AgentOutcome> limit_reached(const AgentContext& ctx, const Tally& tally,
                                          std::chrono::steady_clock::time_point started) {
  const Limits& limits = ctx.settings.limits;
  if (ctx.cancelled && *ctx.cancelled) return tally.end(ExitStatus::Cancelled, "cancelled");
  if (tally.steps >= limits.max_steps)
    return tally.end(ExitStatus::ExitSteps,
                     "reached the limit of " + std::to_string(limits.max_steps) + " steps");
  if (limits.max_cost_usd > 0 && tally.cost_usd >= limits.max_cost_usd)
    return tally.end(ExitStatus::ExitCost,
                     "reached the cost limit of $" + std::to_string(limits.max_cost_usd));
  if (limits.max_tokens > 0 && tally.tokens() >= limits.max_tokens)
    return tally.end(ExitStatus::ExitCost,
                     "reached the limit of " + std::to_string(limits.max_tokens) + " tokens");
  if (limits.timeout.count() > 0 && std::chrono::steady_clock::now() - started >= limits.timeout)
    return tally.end(ExitStatus::ExitTime,
                     "reached the time limit of " + std::to_string(limits.timeout.count()) + " s");
  return std::nullopt;
}

std::vector<Json> function_objects(const Json& tools) {
  std::vector<Json> functions;
  for (const Json& t : tools) functions.push_back(t.contains("function") ? t["function"] : t);
  return functions;
}

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// Where a step's time went: the model, the tools, and (the rest) the loop itself.
struct StepTimes {
  Clock::time_point start = Clock::now();
  double model_ms = 0, tools_ms = 0;
};

void report(const AgentContext& ctx, const storage::Step& step, const Tally& tally,
            const std::string& note, const StepTimes& times) {
  if (!ctx.observer) return;
  StepReport r{.trial = step.trial, .step = step.index, .note = note};
  r.step_ms = ms_between(times.start, Clock::now());
  r.model_ms = times.model_ms;
  r.tools_ms = times.tools_ms;
  for (const storage::ToolCall& c : step.tool_calls) r.tools.push_back(c.name);
  for (const storage::ModelCall& m : step.model_calls) {
    r.usage.prompt_tokens += m.prompt_tokens;
    r.usage.completion_tokens += m.completion_tokens;
    r.usage.cached_tokens += m.cached_tokens;
    r.cost_usd += m.cost_usd;
  }
  r.total_cost_usd = tally.cost_usd;
  r.total_tokens = tally.tokens();
  ctx.observer->on_step(r);
}

}  // namespace

Json initial_prompt(const Config& config, const std::string& task) {
  return Json::array({{{"role", "system"}, {"content", config.system_prompt}},
                      {{"role", "user"}, {"content", task}}});
}

boost::asio::awaitable<AgentOutcome> run_agent(AgentContext& ctx, storage::TrialId trial_id) {
  Tally tally;
  auto trial = ctx.store.load_trial(trial_id);
  if (!trial) co_return tally.end(ExitStatus::ExitEnvironment, trial.error().message);
  auto conversation = Conversation::from_prompt(trial->prompt);
  if (!conversation) co_return tally.end(ExitStatus::ExitEnvironment, conversation.error().message);
  auto recorded = ctx.store.load_steps(trial_id);  // a resumed trial goes on after these
  if (!recorded) co_return tally.end(ExitStatus::ExitEnvironment, recorded.error().message);
  for (const storage::Step& step : *recorded) {
    conversation->add_step(step);
    tally.add(step);
  }
  ctx.backend.skip_answers(tally.steps);

  const detail::Pricing pricing(ctx.config, ctx.backend, ctx.observer);
  const std::vector<Json> tool_functions = function_objects(ctx.config.tools);
  const auto started = Clock::now();
  const Deadline deadline = ctx.settings.limits.timeout.count() > 0
                                ? started + ctx.settings.limits.timeout
                                : Deadline::max();

  for (int index = tally.steps;; ++index) {
    StepTimes times;
    if (auto stop = limit_reached(ctx, tally, started)) co_return *stop;
    std::string note;
    auto room =
        conversation->make_room(ctx.settings.context_window, ctx.settings.max_output_tokens);
    if (!room)
      co_return tally.end(ExitStatus::ExitContext,
                          "the conversation no longer fits the context window");
    if (*room > 0) note = "elided " + std::to_string(*room) + " old outputs";

    // Ask the model.
    ModelRequest request{conversation->messages(), tool_functions, ctx.settings.thinking,
                         ctx.settings.max_output_tokens};
    storage::Step step{.trial = trial_id, .index = index, .created_ms = storage::now_ms()};
    const auto asked = Clock::now();
    bool out_of_time = false;
    auto reply =
        co_await detail::call_model(ctx.backend, std::move(request), ctx.settings.retry, pricing,
                                    step.model_calls, ctx.observer, deadline, out_of_time);
    times.model_ms = ms_between(asked, Clock::now());
    if (!reply)
      co_return tally.end(out_of_time ? ExitStatus::ExitTime : ExitStatus::ExitApi,
                          step.model_calls.back().error);
    conversation->calibrate(reply->usage.prompt_tokens);
    step.content = reply->content;
    step.reasoning_content = reply->reasoning_content;

    // Run its tool calls.
    bool submitted = false, environment_failed = false;
    if (reply->tool_calls.empty()) {
      step.observation = kNoToolCall;
    } else {
      const auto ran = Clock::now();
      std::vector<ToolResult> outcomes = co_await ctx.tools.run(reply->tool_calls, deadline);
      times.tools_ms = ms_between(ran, Clock::now());
      for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const toolcall::ParsedToolCall& call = reply->tool_calls[i];
        step.tool_calls.push_back(storage::ToolCall{
            .index = static_cast<int>(i),
            .call_id = call.id,
            .name = call.name,
            .arguments = call.arguments,
            .result = outcomes[i].output,
            .exit_code = outcomes[i].exit_code,
            .duration_ms = outcomes[i].duration_ms,
            .truncated = outcomes[i].truncated,
        });
        submitted = submitted || outcomes[i].submitted;
        environment_failed = environment_failed || outcomes[i].environment_failed;
      }
    }

    // Record it: durable before the loop goes on.
    conversation->add_step(step);
    tally.add(step);
    auto saved = co_await ctx.store.async_append_step(step);
    if (!saved)
      co_return tally.end(ExitStatus::ExitEnvironment, "recording step: " + saved.error().message);
    report(ctx, step, tally, note, times);

    if (environment_failed)
      co_return tally.end(ExitStatus::ExitEnvironment, "the tools' environment ended");
    if (submitted) co_return tally.end(ExitStatus::Submitted);
    if (tally.format_errors >= ctx.settings.limits.max_format_errors)
      co_return tally.end(ExitStatus::ExitFormat,
                          std::to_string(tally.format_errors) + " answers in a row called no tool");
  }
}

}  // namespace warren::orchestrator
