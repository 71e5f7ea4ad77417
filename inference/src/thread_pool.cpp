#include "thread_pool.hpp"

#include <algorithm>

namespace warren::inference {

namespace {

// How long a thread polls for the next job, or for the workers to finish, before it sleeps: 2,000
// pauses, tens of microseconds, about the gap between a token's linear layers (polling, decode
// on the small preset went from 22-24 to 25-26 tokens/s); much longer, an idle engine's threads
// would take cores from the sandboxes beside it.
constexpr int kSpins = 2000;

// Polls `ready` up to kSpins times; whether it became true.
template <class Ready>
bool spin_until(Ready ready) {
  for (int i = 0; i < kSpins; ++i) {
    if (ready()) return true;
    __builtin_ia32_pause();
  }
  return ready();
}

// How many parts a thread's share of a job is cut into: the threads take the parts one at a time,
// so that one that is slowed (a busy core, a late wake-up) leaves its parts to the others instead
// of holding them all up. With one part a thread, decoding spent ~7% of its time waiting for the
// slower one (ThreadPool::work and parallel_for in perf).
constexpr std::int64_t kPartsPerThread = 8;

// Part `index` of `parts` of [0, n).
std::pair<std::int64_t, std::int64_t> part(std::int64_t n, std::int64_t parts, std::int64_t index) {
  return {n * index / parts, n * (index + 1) / parts};
}

}  // namespace

ThreadPool::ThreadPool(unsigned threads) {
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::parallel_for(std::int64_t n,
                              const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (workers_.empty() || n < 2) {
    if (n > 0) fn(0, n);
    return;
  }
  std::lock_guard turn(turn_);
  const std::int64_t parts = std::min<std::int64_t>(n, kPartsPerThread * size());
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    n_ = n;
    parts_ = parts;
    next_ = 0;
    pending_ = static_cast<unsigned>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  take_parts(fn, n, parts);
  std::unique_lock lock(mutex_, std::defer_lock);
  if (!spin_until([this] { return pending_.load() == 0; })) {
    lock.lock();
    done_.wait(lock, [this] { return pending_ == 0; });
  } else {
    lock.lock();  // the last worker's notify happens under the lock: let it finish first
  }
  job_ = nullptr;
}

void ThreadPool::take_parts(const std::function<void(std::int64_t, std::int64_t)>& fn,
                            std::int64_t n, std::int64_t parts) {
  for (std::int64_t index = next_.fetch_add(1); index < parts; index = next_.fetch_add(1)) {
    const auto [begin, end] = part(n, parts, index);
    fn(begin, end);
  }
}

void ThreadPool::work() {
  std::uint64_t seen = 0;
  for (;;) {
    const std::function<void(std::int64_t, std::int64_t)>* job;
    std::int64_t n, parts;
    spin_until([&] { return stopping_.load() || generation_.load() != seen; });
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      job = job_;
      n = n_;
      parts = parts_;
    }
    take_parts(*job, n, parts);
    {
      std::lock_guard lock(mutex_);
      if (--pending_ == 0) done_.notify_one();
    }
  }
}

}  // namespace warren::inference
