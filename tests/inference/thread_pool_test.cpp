// The pool's parts: every index of a job run once, by some thread, whatever the threads' speeds.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "thread_pool.hpp"

namespace inf = warren::inference;

namespace {

// Runs jobs of n indices on `pool` and counts how often each index ran; every count must be 1.
void expect_each_index_once(inf::ThreadPool& pool, std::int64_t n, bool slow_first) {
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
  std::atomic<int> calls = 0;
  pool.parallel_for(n, [&](std::int64_t begin, std::int64_t end) {
    ASSERT_LE(0, begin);
    ASSERT_LT(begin, end);
    ASSERT_LE(end, n);
    // The first part slow: the other threads must take the rest meanwhile.
    if (slow_first && begin == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (std::int64_t i = begin; i < end; ++i) ++runs[static_cast<std::size_t>(i)];
    ++calls;
  });
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << "index " << i << " of " << n;
  EXPECT_LE(calls.load(), std::max<std::int64_t>(n, 1));
}

}  // namespace

TEST(ThreadPool, EveryIndexRunsOnceForAnySizeAndThreadCount) {
  for (unsigned threads : {1u, 2u, 3u}) {
    inf::ThreadPool pool(threads);
    for (std::int64_t n : {0, 1, 2, 3, 5, 7, 16, 17, 24, 25, 100, 1000})
      expect_each_index_once(pool, n, false);
    // Many short jobs in a row: a worker that wakes late must not run a finished job's parts.
    for (int job = 0; job < 2000; ++job) expect_each_index_once(pool, 1 + job % 40, false);
  }
}

TEST(ThreadPool, OtherThreadsTakeTheSlowThreadsShare) {
  inf::ThreadPool pool(2);
  std::atomic<int> parts_done_meanwhile = 0;
  std::atomic<bool> slow_done = false;
  pool.parallel_for(64, [&](std::int64_t begin, std::int64_t) {
    if (begin == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      slow_done = true;
    } else if (!slow_done) {
      ++parts_done_meanwhile;
    }
  });
  // 16 parts of 4: all but the slow one were taken while it slept (one part a thread, half of
  // them would have waited for it).
  EXPECT_EQ(parts_done_meanwhile.load(), 15);
  expect_each_index_once(pool, 64, true);
}
