// The programs image/ drives (buildah, cp, du, tar), run on the host.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "warren/image/image.hpp"

namespace warren::image::detail {

// The ToolLimits a run passed, killed for it.
enum class ToolLimit { none, time, log, disk };

struct ToolRun {
  int status = 0;   // the exit status; 128 + the signal when one ended it
  std::string out;  // standard output, unless it went to the log
  std::string err;  // standard error, unless it went to the log
  ToolLimit over_limit = ToolLimit::none;
  std::string over_limit_text;  // says which, with the limit: "it ran past its limit of 3 s"
};

// What a run of a tool may take; 0: no limit. Past one, the tool is sent SIGKILL. Checked every
// 100 ms: a limit is passed by what the tool does in that time at most.
struct ToolLimits {
  std::chrono::milliseconds timeout{0};
  std::uint64_t log_bytes = 0;  // the log it appends to (log_fd), which a build's output fills
  // The filesystem of the folder `disk` keeps `keep_free` bytes free (what an unprivileged user
  // may still write, statvfs's f_bavail): one tool cannot fill the disk that others share.
  std::string disk;
  std::uint64_t keep_free = 0;
  // Called with the tool's pid just before it is killed for a limit: to read what only its
  // running processes show (the mounts of its namespace).
  std::function<void(pid_t)> before_kill;
};

// The bytes an unprivileged user may still write to the filesystem of `folder`.
std::uint64_t free_bytes(const std::string& folder);

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
