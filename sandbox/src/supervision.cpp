#include "supervision.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace warren::sandbox::detail {

void Supervision::read(Pipe& pipe, Sink sink, AtEnd at_end) {
  if (pipe.read < 0) return;
  entries_.push_back({.pipe = &pipe, .fd = pipe.read, .sink = std::move(sink), .at_end = at_end});
}

void Supervision::write(Pipe& pipe, std::string_view data) {
  if (pipe.write < 0) return;
  if (data.empty()) {
    pipe.close_write();
    return;
  }
  fcntl(pipe.write, F_SETFL, O_NONBLOCK);  // a reader that stops must not stop the supervisor
  entries_.push_back({.pipe = &pipe, .fd = pipe.write, .events = POLLOUT, .data = data});
}

void Supervision::watch(int fd, std::function<void()> on_ready) {
  if (fd >= 0) entries_.push_back({.fd = fd, .on_ready = std::move(on_ready)});
}

void Supervision::unwatch(int fd) {
  std::erase_if(entries_, [fd](const Entry& e) { return e.fd == fd && !e.pipe; });
}

bool Supervision::reading() const {
  return std::any_of(entries_.begin(), entries_.end(),
                     [](const Entry& e) { return e.pipe && e.events == POLLIN; });
}

void Supervision::close(Pipe& pipe) {
  std::erase_if(entries_, [&](const Entry& e) { return e.pipe == &pipe; });
  for (int fd : {pipe.read, pipe.write})
    if (fd >= 0) poller_.forget(fd);
  pipe.close_both();
}

void Supervision::drop(Entry& entry) {
  // The poller hears of it before the number can be reused.
  poller_.forget(entry.fd);
  if (entry.pipe && entry.at_end == AtEnd::Close) {
    if (entry.events == POLLIN)
      entry.pipe->close_read();
    else
      entry.pipe->close_write();
  }
  entry.fd = -1;
}

void Supervision::serve(Entry& entry) {
  if (entry.events == POLLOUT) {
    const ssize_t w = ::write(entry.fd, entry.data.data(), entry.data.size());
    if (w > 0) entry.data.remove_prefix(static_cast<std::size_t>(w));
    if (w < 0 || entry.data.empty()) drop(entry);
    return;
  }
  if (read_chunk(entry.fd, entry.sink) <= 0) drop(entry);
}

boost::asio::awaitable<int> Supervision::round(int wait_ms) {
  std::vector<pollfd> fds;
  fds.reserve(entries_.size());
  for (const Entry& e : entries_) fds.push_back({e.fd, e.events, 0});
  const int ready = co_await poller_.poll(fds.data(), static_cast<int>(fds.size()), wait_ms);
  if (ready <= 0) co_return ready;
  // Served in the order they were registered; a callback may add or remove watches, so the
  // entries are found again by descriptor rather than by position.
  for (const pollfd& p : fds) {
    if (!p.revents) continue;
    auto entry = std::find_if(entries_.begin(), entries_.end(),
                              [&](const Entry& e) { return e.fd == p.fd && e.fd >= 0; });
    if (entry == entries_.end()) continue;
    if (!entry->pipe) {
      auto on_ready = entry->on_ready;  // the callback may unwatch its own entry
      on_ready();
      continue;
    }
    serve(*entry);
  }
  std::erase_if(entries_, [](const Entry& e) { return e.fd < 0; });
  co_return ready;
}

}  // namespace warren::sandbox::detail
