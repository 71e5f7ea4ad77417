// poll(2) as an Asio awaitable: the supervision loops of run.cpp and session.cpp are written
// against it once, and run on the caller's executor (async_run, async_exec) or on a private
// io_context (run, exec). One AsyncPoll per sandbox being watched.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <boost/asio/any_io_executor.hpp>
#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace warren::sandbox::detail {

class AsyncPoll {
 public:
  explicit AsyncPoll(boost::asio::any_io_executor executor);
  ~AsyncPoll();  // stops watching; closes nothing
  AsyncPoll(const AsyncPoll&) = delete;
  AsyncPoll& operator=(const AsyncPoll&) = delete;

  // Like poll(2): waits until one of `fds` is ready or `timeout_ms` has passed (-1: no limit) and
  // fills in revents. Returns how many are ready.
  boost::asio::awaitable<int> poll(pollfd* fds, int count, int timeout_ms);

  // Must be called before a watched descriptor is closed: the reactor knows descriptors by number,
  // and the number may be reused at once.
  void forget(int fd);

  // Waits `ms` milliseconds on the executor.
  boost::asio::awaitable<void> sleep(int ms);

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with pending completion handlers
};

// One read of up to 64 KiB from `fd`, handed to `sink(data, size)`; returns read's result. The
// buffer lives on the thread's stack, not in the frame of the coroutine calling it, which each of
// thousands of supervised sandboxes keeps.
template <class Sink>
long read_chunk(int fd, Sink&& sink) {
  char buffer[65536];
  const long n = ::read(fd, buffer, sizeof buffer);
  if (n > 0) sink(buffer, static_cast<std::size_t>(n));
  return n;
}

// io_contexts for the blocking forms (run, exec), kept between calls: making one costs an epoll
// instance, an eventfd and a timerfd, ten system calls in all, against a start's few dozen.
class IoContextPool {
 public:
  // Runs `task` to its end on an io_context that no other call is using.
  template <class T>
  T run_to_completion(boost::asio::awaitable<T> task) {
    std::unique_ptr<boost::asio::io_context> io = take();
    std::optional<T> result;
    std::exception_ptr failure;
    boost::asio::co_spawn(
        *io, [&]() -> boost::asio::awaitable<void> { result.emplace(co_await std::move(task)); },
        [&](std::exception_ptr e) { failure = e; });
    io->run();
    give_back(std::move(io));  // run() has returned: nothing is pending on it
    if (failure) std::rethrow_exception(failure);
    return std::move(*result);
  }

 private:
  std::unique_ptr<boost::asio::io_context> take();
  void give_back(std::unique_ptr<boost::asio::io_context> io);

  std::mutex lock_;
  std::vector<std::unique_ptr<boost::asio::io_context>> free_;
};

}  // namespace warren::sandbox::detail
