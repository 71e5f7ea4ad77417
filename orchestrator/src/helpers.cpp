// Helpers the orchestrator shares with evaluation (orchestrator.hpp, "Helpers").
#include <fstream>
#include <sstream>
#include <utility>  // before Asio 1.74, which uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "warren/orchestrator/orchestrator.hpp"

namespace warren::orchestrator {

boost::asio::awaitable<void> run_all(std::vector<boost::asio::awaitable<void>> tasks) {
  auto executor = co_await boost::asio::this_coro::executor;
  // The timer never fires by itself: the last task to end cancels it, which wakes the caller.
  boost::asio::steady_timer all_done(executor, boost::asio::steady_timer::time_point::max());
  std::size_t running = tasks.size();
  for (auto& task : tasks)
    boost::asio::co_spawn(executor, std::move(task), [&](std::exception_ptr) {
      if (--running == 0) all_done.cancel();
    });
  // A task may end inside co_spawn (dispatched inline) before the wait begins.
  if (running > 0) {
    boost::system::error_code ignored;
    co_await all_done.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ignored));
  }
}

std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

Result<std::string> read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected(Error{"cannot read " + what + " " + path});
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace warren::orchestrator
