// What a Session holds: its running sandbox and what its file API needs.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include "launch.hpp"
#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox {

struct Session::State {
  ~State() {
    if (root_fd >= 0) close(root_fd);
  }
  Policy policy;
  std::unique_ptr<detail::Launched> sandbox;
  int root_fd = -1;  // /proc/<PID 1>/root: the file API resolves paths under it
  std::string workdir;
  std::string nonce;
  std::uint64_t commands = 0;
  bool dead = false;
};

}  // namespace warren::sandbox
