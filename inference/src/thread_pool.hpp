// The CPU path's threads: a fixed pool that splits a range of rows among itself and the caller.
// Each row is computed whole by one thread, so results are the same for any number of threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace warren::inference {

class ThreadPool {
 public:
  explicit ThreadPool(unsigned threads);  // the caller is one of them: threads - 1 workers
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  unsigned size() const { return static_cast<unsigned>(workers_.size()) + 1; }
  // fn(begin, end) over [0, n) in contiguous parts (up to 8 a thread), which the threads, the
  // caller among them, take in turn until none is left; returns when all are done. Which thread
  // takes which part varies from run to run: fn must give the same results whoever runs a part.
  // Callers on several threads take turns.
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& fn);

 private:
  void work();
  void take_parts(const std::function<void(std::int64_t, std::int64_t)>& fn, std::int64_t n,
                  std::int64_t parts);

  std::vector<std::thread> workers_;
  std::mutex turn_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t, std::int64_t)>* job_ = nullptr;
  std::int64_t n_ = 0, parts_ = 0;
  std::atomic<std::int64_t> next_ = 0;  // the next part to take
  // Written under mutex_; read without it too, by the threads spinning a while before they sleep
  // (a decoded token is a few hundred short jobs, and a futex wake-up took a tenth of its time).
  std::atomic<std::uint64_t> generation_ = 0;
  std::atomic<unsigned> pending_ = 0;
  std::atomic<bool> stopping_ = false;
};

// fn(begin, end) over parts of [0, n) split among the pool's threads (none: fn(0, n) on the
// caller's alone).
template <class Fn>
void each_range(ThreadPool* pool, std::int64_t n, const Fn& fn) {
  if (pool)
    pool->parallel_for(n, fn);
  else
    fn(0, n);
}

// fn(i) for each i in [0, n), split among the pool's threads (none: the caller's alone): for work
// whose items are independent, each computed whole by one thread.
template <class Fn>
void each_index(ThreadPool* pool, std::size_t n, const Fn& fn) {
  each_range(pool, static_cast<std::int64_t>(n), [&](std::int64_t begin, std::int64_t end) {
    for (auto i = static_cast<std::size_t>(begin); i < static_cast<std::size_t>(end); ++i) fn(i);
  });
}

}  // namespace warren::inference
