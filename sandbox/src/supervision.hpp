// The supervision loop's round, written once for both supervisors: Runtime::async_run (one
// command in its own sandbox) and Session::async_exec (one command of a session's shell). A
// sandbox's pipes and descriptors are polled on the caller's executor; what a pipe holds goes to
// its sink as it comes; a pipe that ends is closed (or, for a session's lasting pipes, left open
// and watched no more). The loops around it keep their own policy: timeouts, markers, recycling.
#pragma once

#include <poll.h>

#include <cstddef>
#include <functional>
#include <string_view>
#include <utility>  // before Asio 1.74's awaitable.hpp, which uses std::exchange without it
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "async_poll.hpp"
#include "launch.hpp"

namespace warren::sandbox::detail {

class Supervision {
 public:
  using Sink = std::function<void(const char* data, std::size_t size)>;
  enum class AtEnd { Close, KeepOpen };

  explicit Supervision(boost::asio::any_io_executor executor) : poller_(std::move(executor)) {}

  // Reads `pipe` into `sink` until it ends.
  void read(Pipe& pipe, Sink sink, AtEnd at_end = AtEnd::Close);
  // Writes `data` to `pipe` as fast as its reader takes it, then closes it (at once if empty).
  // `data` must outlive the supervision.
  void write(Pipe& pipe, std::string_view data);
  // Calls `on_ready` when `fd` turns readable (a pidfd, a status pipe), until unwatch(fd).
  void watch(int fd, std::function<void()> on_ready);
  void unwatch(int fd);

  // Waits until a descriptor is ready or `wait_ms` has passed (-1: no limit), then serves every
  // ready one. Returns poll's result: 0 when nothing was ready, < 0 on failure (errno says).
  boost::asio::awaitable<int> round(int wait_ms);
  boost::asio::awaitable<void> sleep(int ms) { return poller_.sleep(ms); }

  bool reading() const;  // whether a pipe is still being read
  // Closes both ends of `pipe`, telling the poller first.
  void close(Pipe& pipe);
  // Stops watching `fd` for good, without closing it: another supervision will watch it.
  void hand_over(int fd) { poller_.forget(fd); }

 private:
  struct Entry {
    Pipe* pipe = nullptr;  // a pipe read or written; null for a watched descriptor
    int fd = -1;
    short events = POLLIN;
    Sink sink;
    AtEnd at_end = AtEnd::Close;
    std::string_view data;  // left to write
    std::function<void()> on_ready;
  };
  void serve(Entry& entry);
  void drop(Entry& entry);  // watched no more; closed if it is a pipe to close

  AsyncPoll poller_;
  std::vector<Entry> entries_;
};

}  // namespace warren::sandbox::detail
