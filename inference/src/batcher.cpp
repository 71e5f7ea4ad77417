// The Batcher: concurrent generations gathered into decode steps, on a thread of its own.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "decoding.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

struct Pending {
  Batcher::Request request;
  std::promise<Result<Generated>> done;
};

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
  std::deque<Pending> queue;
  bool stopping = false;
  Stats stats;
  std::vector<InFlight> in_flight;  // the worker's alone
  std::thread worker;

  void run();
  void admit(Pending& pending);
  void step();
};

// A new request's prompt through the engine and its first token chosen; it joins the steps unless
// that token already ended it.
void Batcher::State::admit(Pending& pending) {
  auto decoding = Decoding::begin(*engine, pending.request.options, pending.request.on_token);
  if (!decoding) return pending.done.set_value(tl::unexpected(decoding.error()));
  Sequence sequence = engine->start();
  auto logits = engine->feed(sequence, pending.request.prompt);
  if (!logits) return pending.done.set_value(tl::unexpected(logits.error()));
  if (const auto token = decoding->next(*logits))
    in_flight.push_back(
        {std::move(sequence), std::move(*decoding), *token, std::move(pending.done)});
  else
    pending.done.set_value(std::move(*decoding).finish());
}

// Every request in flight fed its token in one Engine::step; each then chooses its next or ends.
void Batcher::State::step() {
  std::vector<Sequence*> sequences;
  std::vector<std::int32_t> tokens;
  for (InFlight& r : in_flight) {
    sequences.push_back(&r.sequence);
    tokens.push_back(r.token);
  }
  auto logits = engine->step(sequences, tokens);
  {
    std::lock_guard lock(mutex);
    ++stats.steps;
    stats.step_tokens += static_cast<std::int64_t>(in_flight.size());
    stats.largest_step = std::max(stats.largest_step, static_cast<std::int64_t>(in_flight.size()));
  }
  std::vector<InFlight> going_on;
  for (std::size_t i = 0; i < in_flight.size(); ++i) {
    InFlight& r = in_flight[i];
    if (!logits) {
      r.done.set_value(tl::unexpected(logits.error()));
    } else if (const auto token = r.decoding.next((*logits)[i])) {
      r.token = *token;
      going_on.push_back(std::move(r));
    } else {
      r.done.set_value(std::move(r.decoding).finish());
    }
  }
  in_flight = std::move(going_on);
}

void Batcher::State::run() {
  for (;;) {
    std::deque<Pending> arrived;
    {
      std::unique_lock lock(mutex);
      wake.wait(lock, [&] { return stopping || !queue.empty() || !in_flight.empty(); });
      if (stopping && queue.empty() && in_flight.empty()) return;
      arrived.swap(queue);
    }
    for (Pending& pending : arrived) admit(pending);
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

std::vector<std::future<Result<Generated>>> Batcher::submit(std::vector<Request> requests) {
  std::vector<std::future<Result<Generated>>> results;
  {
    std::lock_guard lock(state_->mutex);
    for (Request& request : requests) {
      Pending& pending = state_->queue.emplace_back(Pending{std::move(request), {}});
      results.push_back(pending.done.get_future());
      ++state_->stats.requests;
    }
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
