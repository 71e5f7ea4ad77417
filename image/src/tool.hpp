// The programs image/ drives (buildah, cp, du, tar), run on the host.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "warren/image/image.hpp"

namespace warren::image::detail {

struct ToolRun {
  int status = 0;          // the exit status; 128 + the signal when one ended it
  std::string out;         // standard output, unless it went to the log
  std::string err;         // standard error, unless it went to the log
  std::string over_limit;  // which ToolLimits it passed, killed for it: "" when none
};

// What a run of a tool may take; 0: no limit. Past one, the tool is sent SIGKILL.
struct ToolLimits {
  std::chrono::milliseconds timeout{0};
  std::uint64_t log_bytes = 0;  // the log it appends to (log_fd), which a build's output fills
};

// `name`'s path on PATH (then /usr/sbin, /sbin); "" when it is nowhere. A path is kept.
std::string on_path(const std::string& name);

// Runs `argv` (found on PATH) and waits for it; it is sent `death_signal` if this process dies
// first. With `log_fd` >= 0 both its outputs are appended there; otherwise they are captured. An
// Error only when the program cannot be started.
Result<ToolRun> run_tool(const std::vector<std::string>& argv, int log_fd = -1,
                         int death_signal = SIGTERM, ToolLimits limits = {});

// The last `lines` lines of `text`, for an error message.
std::string last_lines(const std::string& text, int lines);

}  // namespace warren::image::detail
