#include "async_poll.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <map>

namespace warren::sandbox::detail {

namespace asio = boost::asio;

struct AsyncPoll::State {
  explicit State(asio::any_io_executor ex) : executor(ex), wake(ex) {}
  struct Watched {
    explicit Watched(asio::any_io_executor ex, int fd) : descriptor(ex, fd) {}
    asio::posix::stream_descriptor descriptor;
    bool reading = false, writing = false;  // a wait is pending
  };
  asio::any_io_executor executor;
  asio::steady_timer wake;  // cancelled by every completed wait
  std::map<int, std::unique_ptr<Watched>> watched;
};

AsyncPoll::AsyncPoll(asio::any_io_executor executor) : state_(std::make_shared<State>(executor)) {}

AsyncPoll::~AsyncPoll() {
  for (auto& [fd, w] : state_->watched) {
    w->descriptor.cancel();
    w->descriptor.release();
  }
  state_->watched.clear();
  state_->wake.cancel();
}

void AsyncPoll::forget(int fd) {
  auto found = state_->watched.find(fd);
  if (found == state_->watched.end()) return;
  found->second->descriptor.cancel();
  found->second->descriptor.release();
  state_->watched.erase(found);
}

asio::awaitable<int> AsyncPoll::poll(pollfd* fds, int count, int timeout_ms) {
  // What is ready now needs no wait; this also catches readiness that a completed wait reported
  // while nobody was waiting on the timer.
  int ready = ::poll(fds, static_cast<nfds_t>(count), 0);
  if (ready != 0 || timeout_ms == 0) co_return ready;

  const std::shared_ptr<State> s = state_;
  for (int i = 0; i < count; ++i) {
    auto& slot = s->watched[fds[i].fd];
    if (!slot) slot = std::make_unique<State::Watched>(s->executor, fds[i].fd);
    State::Watched& w = *slot;
    const int fd = fds[i].fd;
    auto arm = [&](bool& pending, asio::posix::descriptor_base::wait_type type) {
      if (pending) return;
      pending = true;
      w.descriptor.async_wait(type, [s, fd, type](boost::system::error_code ec) {
        if (ec == asio::error::operation_aborted) return;  // forgotten, or the poller is gone
        auto found = s->watched.find(fd);
        if (found == s->watched.end()) return;
        (type == asio::posix::descriptor_base::wait_read ? found->second->reading
                                                         : found->second->writing) = false;
        s->wake.cancel();
      });
    };
    if (fds[i].events & POLLIN) arm(w.reading, asio::posix::descriptor_base::wait_read);
    if (fds[i].events & POLLOUT) arm(w.writing, asio::posix::descriptor_base::wait_write);
  }
  if (timeout_ms < 0)
    s->wake.expires_at(asio::steady_timer::time_point::max());
  else
    s->wake.expires_after(std::chrono::milliseconds(timeout_ms));
  boost::system::error_code ec;
  co_await s->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  co_return ::poll(fds, static_cast<nfds_t>(count), 0);
}

asio::awaitable<void> AsyncPoll::sleep(int ms) {
  asio::steady_timer timer(state_->executor, std::chrono::milliseconds(ms));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

std::unique_ptr<asio::io_context> IoContextPool::take() {
  {
    std::lock_guard guard(lock_);
    if (!free_.empty()) {
      auto io = std::move(free_.back());
      free_.pop_back();
      io->restart();
      return io;
    }
  }
  return std::make_unique<asio::io_context>();
}

void IoContextPool::give_back(std::unique_ptr<asio::io_context> io) {
  // As many as threads ever called at once, up to a bound: each idle one holds three descriptors.
  constexpr std::size_t kKeep = 64;
  std::lock_guard guard(lock_);
  if (free_.size() < kKeep) free_.push_back(std::move(io));
}

}  // namespace warren::sandbox::detail
