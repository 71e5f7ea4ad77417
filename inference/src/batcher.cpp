// The Batcher: concurrent generations gathered into decode steps, on a thread of its own.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <iterator>
#include <mutex>
#include <thread>

#include "decoding.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

// A request whose prompt is being fed, kPrefillTokens a round at most between steps.
struct Prefilling {
  Batcher::Request request;
  std::promise<Result<Generated>> done;
  Decoding decoding;
  Sequence sequence;
  std::size_t fed = 0;  // prompt tokens fed so far
};

// The prompt tokens fed between two steps, all new requests' together: a long prompt goes in
// pieces, so that the requests in flight are not held for the whole of it.
constexpr std::size_t kPrefillTokens = 256;

// A request in flight: its sequence, its choices so far, and the token it feeds at the next step.
struct InFlight {
  Sequence sequence;
  Decoding decoding;
  std::int32_t token;
  std::promise<Result<Generated>> done;
};

}  // namespace

struct Batcher::State {
  std::shared_ptr<const Engine> engine;
  mutable std::mutex mutex;  // guards queue, stopping and stats
  std::condition_variable wake;
  std::deque<Prefilling> queue;  // submitted, not yet taken by the worker
  bool stopping = false;
  Stats stats;
  std::deque<Prefilling> prefilling;  // the worker's alone, as in_flight
  std::vector<InFlight> in_flight;
  std::thread worker;

  void run();
  bool prefill(Prefilling& p, std::size_t& budget);
  void prefill();
  void step();
};

// Up to `budget` more of p's prompt through the engine: true while some of it is left for the
// next round. Once it is all fed, p chooses its first token and joins the steps, unless that
// token ended it. Here and in step(), whatever a request's work throws (a callback of its own, an
// allocation) ends that request with the exception, not the batcher's thread.
bool Batcher::State::prefill(Prefilling& p, std::size_t& budget) {
  const std::span<const std::int32_t> prompt(p.request.prompt);
  const std::size_t n = std::min(budget, prompt.size() - p.fed);
  if (n == 0) return true;  // the budget is spent
  auto logits = engine->feed(p.sequence, prompt.subspan(p.fed, n));
  budget -= n;
  p.fed += n;
  if (!logits) {
    p.done.set_value(tl::unexpected(logits.error()));
  } else if (p.fed < prompt.size()) {
    return true;
  } else if (const auto token = p.decoding.next(*logits)) {
    in_flight.push_back({std::move(p.sequence), std::move(p.decoding), *token, std::move(p.done)});
  } else {
    p.done.set_value(std::move(p.decoding).finish());
  }
  return false;
}

// kPrefillTokens prompt tokens at most, oldest request first.
void Batcher::State::prefill() {
  std::size_t budget = kPrefillTokens;
  while (!prefilling.empty()) {
    Prefilling& p = prefilling.front();
    try {
      if (prefill(p, budget)) return;
    } catch (...) {
      p.done.set_exception(std::current_exception());
    }
    prefilling.pop_front();
  }
}

// Every request in flight fed its token in one Engine::step; each then chooses its next or ends.
// The step fails only as a whole (it refuses a sequence given twice or a token outside the
// vocabulary, neither of which a request in flight can hold), and then fails every request in it.
void Batcher::State::step() {
  std::vector<Sequence*> sequences;
  std::vector<std::int32_t> tokens;
  for (InFlight& r : in_flight) {
    sequences.push_back(&r.sequence);
    tokens.push_back(r.token);
  }
  Result<std::vector<std::vector<float>>> logits = tl::unexpected(Error{});
  std::exception_ptr thrown;
  try {
    logits = engine->step(sequences, tokens);
  } catch (...) {
    thrown = std::current_exception();
  }
  {
    std::lock_guard lock(mutex);
    ++stats.steps;
    stats.step_tokens += static_cast<std::int64_t>(in_flight.size());
    stats.largest_step = std::max(stats.largest_step, static_cast<std::int64_t>(in_flight.size()));
  }
  std::vector<InFlight> going_on;
  for (std::size_t i = 0; i < in_flight.size(); ++i) {
    InFlight& r = in_flight[i];
    try {
      if (thrown) std::rethrow_exception(thrown);
      if (!logits) {
        r.done.set_value(tl::unexpected(logits.error()));
      } else if (const auto token = r.decoding.next((*logits)[i])) {
        r.token = *token;
        going_on.push_back(std::move(r));
      } else {
        r.done.set_value(std::move(r.decoding).finish());
      }
    } catch (...) {
      r.done.set_exception(std::current_exception());
    }
  }
  in_flight = std::move(going_on);
}

void Batcher::State::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex);
      const auto idle = [&] { return queue.empty() && prefilling.empty() && in_flight.empty(); };
      wake.wait(lock, [&] { return stopping || !idle(); });
      if (stopping && idle()) return;
      std::move(queue.begin(), queue.end(), std::back_inserter(prefilling));
      queue.clear();
    }
    prefill();
    if (!in_flight.empty()) step();
  }
}

Batcher::Batcher(std::shared_ptr<const Engine> engine) : state_(std::make_unique<State>()) {
  state_->engine = std::move(engine);
  state_->worker = std::thread([state = state_.get()] { state->run(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->worker.join();
}

const Engine& Batcher::engine() const {
  return *state_->engine;
}

// Each request begins here, on the caller's thread: one that is refused (an empty prompt; a stop
// string without a tokenizer) has its error in its future at once and never reaches the worker.
std::vector<std::future<Result<Generated>>> Batcher::submit(std::vector<Request> requests) {
  std::vector<std::future<Result<Generated>>> results;
  std::vector<Prefilling> accepted;
  for (Request& request : requests) {
    std::promise<Result<Generated>> done;
    results.push_back(done.get_future());
    auto decoding =
        Decoding::begin(*state_->engine, request.prompt, request.options, request.on_token);
    if (!decoding) {
      done.set_value(tl::unexpected(decoding.error()));
      continue;
    }
    accepted.push_back(
        {std::move(request), std::move(done), std::move(*decoding), state_->engine->start()});
  }
  {
    std::lock_guard lock(state_->mutex);
    state_->stats.requests += static_cast<std::int64_t>(requests.size());
    std::move(accepted.begin(), accepted.end(), std::back_inserter(state_->queue));
  }
  state_->wake.notify_all();
  return results;
}

Result<Generated> Batcher::generate(std::span<const std::int32_t> prompt,
                                    const GenerateOptions& options,
                                    const std::function<void(std::int32_t token)>& on_token) {
  std::vector<Request> one;
  one.push_back({{prompt.begin(), prompt.end()}, options, on_token});
  return submit(std::move(one))[0].get();
}

Batcher::Stats Batcher::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

}  // namespace warren::inference
