// `warren sandbox shell` on a terminal: an interactive bash in the sandbox on a pty, relayed to
// the user's terminal in raw mode (line editing, job control, Ctrl-C and full-screen programs
// work), with the window size kept in step. One io_context runs the sandbox and both relays.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <utility>  // before Asio 1.74's awaitable.hpp

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>

#include "sandbox_commands.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::cli {

namespace {

namespace asio = boost::asio;
namespace sb = warren::sandbox;

// The user's terminal in raw mode for as long as this lives: keys go to the sandbox's terminal as
// typed, and that terminal does the echoing and the signals. The descriptors' flags come back too:
// the reactor makes them non-blocking, and they are shared with the shell that started warren.
class RawMode {
 public:
  RawMode()
      : active_(tcgetattr(0, &saved_) == 0),
        in_flags_(fcntl(0, F_GETFL)),
        out_flags_(fcntl(1, F_GETFL)) {
    if (!active_) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    tcsetattr(0, TCSANOW, &raw);
  }
  ~RawMode() {
    if (active_) tcsetattr(0, TCSANOW, &saved_);
    if (in_flags_ >= 0) fcntl(0, F_SETFL, in_flags_);
    if (out_flags_ >= 0) fcntl(1, F_SETFL, out_flags_);
  }
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  termios saved_{};
  bool active_;
  int in_flags_, out_flags_;
};

void copy_window_size(int from, int to) {
  winsize size{};
  if (ioctl(from, TIOCGWINSZ, &size) == 0) ioctl(to, TIOCSWINSZ, &size);
}

// Copies `from` to `to` until either ends (the sandbox's terminal reads EIO once nothing in the
// sandbox holds it).
asio::awaitable<void> relay(asio::posix::stream_descriptor& from,
                            asio::posix::stream_descriptor& to) {
  char buffer[4096];
  boost::system::error_code ec;
  while (true) {
    const std::size_t n = co_await from.async_read_some(
        asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await asio::async_write(to, asio::buffer(buffer, n),
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

asio::awaitable<void> keep_window_size(asio::signal_set& resized, int master) {
  boost::system::error_code ec;
  while (true) {
    co_await resized.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    copy_window_size(0, master);
  }
}

asio::awaitable<void> run_bash(sb::Runtime& runtime, sb::Policy policy, int slave,
                               sb::Result<sb::ExecResult>& result, asio::io_context& io) {
  sb::Command command;
  command.argv = {"/bin/bash", "-i"};
  command.terminal = slave;
  result = co_await runtime.async_run(std::move(policy), std::move(command));
  close(slave);  // nothing holds the terminal now: what is left in it can be drained
  io.stop();     // the relays end with the shell
}

// What the shell wrote last and the relay had not copied yet (its goodbye, the "exit" echo).
void drain(int master) {
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  char buffer[4096];
  for (ssize_t n; (n = read(master, buffer, sizeof buffer)) > 0;)
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = write(1, buffer + done, static_cast<std::size_t>(n - done));
      if (w <= 0) return;
      done += w;
    }
}

}  // namespace

int run_interactive_shell(const sb::Policy& policy) {
  const int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
    std::cerr << "warren sandbox shell: cannot open a pseudo-terminal: " << std::strerror(errno)
              << "\n";
    return 1;
  }
  const int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) {
    std::cerr << "warren sandbox shell: cannot open " << ptsname(master) << ": "
              << std::strerror(errno) << "\n";
    close(master);
    return 1;
  }
  copy_window_size(0, master);
  // The policy's wall-clock timeout is for commands, not for a person at a shell.
  sb::Policy interactive = policy;
  interactive.limits.timeout = std::chrono::milliseconds(0);

  asio::io_context io;
  sb::Runtime runtime;
  asio::posix::stream_descriptor user_in(io, dup(0)), user_out(io, dup(1)), pty(io, master);
  asio::signal_set resized(io, SIGWINCH);
  sb::Result<sb::ExecResult> result = tl::unexpected(sb::Error{"the shell did not run"});
  {
    RawMode raw;
    asio::co_spawn(io, run_bash(runtime, interactive, slave, result, io), asio::detached);
    asio::co_spawn(io, relay(user_in, pty), asio::detached);
    asio::co_spawn(io, relay(pty, user_out), asio::detached);
    asio::co_spawn(io, keep_window_size(resized, master), asio::detached);
    io.run();
    drain(master);
  }
  if (!result) {
    std::cerr << "warren sandbox shell: " << result.error().message << "\n";
    return 2;
  }
  if (result->signal) return 128 + result->signal;
  return result->exit_code;
}

}  // namespace warren::cli
