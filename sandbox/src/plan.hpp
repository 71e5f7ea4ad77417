// What the parent prepares for the sandbox's first process before clone(). The child runs on a
// copy of the parent's memory and, until exec, uses only these prepared values and system calls:
// no allocation, so a multi-threaded parent cannot leave it a locked allocator.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

// Code that runs in the sandbox's PID 1 lives on a stack of its own (clone), which AddressSanitizer
// does not know: it is left uninstrumented so that sanitizer builds stay quiet and correct.
#define WARREN_CHILD_CODE __attribute__((no_sanitize("address")))

namespace warren::sandbox::detail {

// Keeps the strings a plan points to alive.
struct Strings {
  const char* keep(std::string s) { return store.emplace_back(std::move(s)).c_str(); }
  std::deque<std::string> store;
};

// One filesystem operation. Paths are absolute, or relative to the directory of the last
// EnterDirectory step.
//
// Attach mounts a host directory or file that PID 1 cannot name: when the spawner's mount
// namespace holds none of the host's mounts (spawner.cpp), neither does the copy each PID 1 starts
// from. The supervisor, in the host's namespace, opens a detached copy of `source` (open_tree,
// recursive, as a recursive bind would be) and PID 1 moves it to `path`.
struct FsStep {
  enum Kind {
    Mkdir,
    Symlink,
    Touch,
    Mount,
    RemountReadOnly,
    DeviceNode,
    EnterDirectory,
    Attach,
    Restrict,   // nosuid and nodev on the mount at `path` and every mount below it; ro stays as is
    WriteFile,  // `path` made or emptied, then holding `data`
  } kind;
  const char* path;              // target
  const char* source = nullptr;  // Mount and Attach: source; Symlink: link text
  const char* fstype = nullptr;
  unsigned long flags =
      0;  // Mount: mount flags; DeviceNode: the device number; Mkdir: see mount.cpp
  const char* data = nullptr;
  unsigned mode = 0755;
  bool optional = false;  // skip quietly when the source does not exist
  int tree = -1;          // Attach: the open_tree descriptor; travels beside the plan's bytes
  // Attach, as root: the tree is idmapped (read-only) so that what host uid N owns, the
  // sandbox's uid N owns. An image's files keep their image owners on the host, and each
  // sandbox, in its own id range, still owns its /etc and /root. The supervisor's alone.
  bool shift_ids = false;
};

// Host paths one sandbox may attach: the workspace, the image, the snapshot and the --mount
// sources together. A bound on the descriptors PID 1 keeps and the spawner's request carries.
constexpr int kMaxAttached = 32;

// What PID 1 tells its supervisor in one byte: the kind of an error report on the error pipe
// ("S<what>: <error>"), or, after a recycled sandbox's wait status on the status pipe, whether
// the sandbox is as new.
enum class InitWord : char {
  SetupFailed = 'S',  // the sandbox could not be set up: an error of Warren's, never the command's
  ExecFailed = 'E',   // the command could not be executed (not found, not executable)
  AsNew = 'R',        // a recycled sandbox, checked as new: ready for the next command
  Changed = 'X',      // a recycled sandbox that is not as new: to be discarded
};
constexpr char word(InitWord w) {
  return static_cast<char>(w);
}
// Whether an error report (as read from the error pipe) is of kind `w`.
inline bool reported(const std::string& report, InitWord w) {
  return !report.empty() && report[0] == word(w);
}

struct RlimitSetting {
  int resource;
  rlimit value;
};

struct ChildPlan {
  // Pipes (the other ends are the parent's).
  int go_read = -1;      // the parent writes one byte when maps and cgroups are in place (a socket)
  int error_write = -1;  // setup failures, as text; close-on-exec, so exec closes it
  int status_write = -1;  // PID 1 writes the command's wait status here
  int stdin_read = -1, stdout_write = -1, stderr_write = -1;
  int lifeline = -1;  // the spawner's pidfd: readable once it has exited
  // Every signal's action is the default already (the spawner's are): PID 1 need not set each one
  // again. Not part of the encoded plan: the spawner says it of itself.
  bool signals_default = false;
  // cgroup v1 `tasks` files PID 1 writes "0" into to join its cgroup (see Cgroup).
  static constexpr int kMaxCgroupFiles = 4;
  int cgroup_tasks[kMaxCgroupFiles] = {-1, -1, -1, -1};

  const char* new_root = nullptr;    // where the new root is assembled before pivot_root
  std::vector<FsStep> before_pivot;  // paths under new_root
  std::vector<FsStep> after_pivot;   // paths in the new root (masks over /proc)
  const char* hostname = nullptr;
  unsigned host_ids = 0;     // the host id of the sandbox's root (user.hpp); 0 rootless
  bool loopback_up = false;  // a private network namespace gets its lo up
  const char* workdir = "/";
  bool terminal = false;  // stdin is a terminal, to become the command's controlling terminal
  // After the command, PID 1 ends what is left, checks the sandbox is as new, and waits on
  // go_read (a socket then) for another command: see recycle.hpp.
  bool recycle = false;
  std::vector<char*> argv;            // null-terminated
  std::vector<char*> envp;            // null-terminated
  const char* search_path = nullptr;  // PATH used to find argv[0]
  std::vector<RlimitSetting> rlimits;
  int last_capability = 63;  // /proc/sys/kernel/cap_last_cap: the bounding set is dropped up to it
  // The capabilities the command keeps (bit n: capability n), in every set and the bounding set;
  // the rest are dropped. 0 but for Privileges::Container.
  std::uint64_t kept_capabilities = 0;
  sock_fprog seccomp{};  // a filter compiled in the parent
};

// A plan as bytes, for the spawner process (spawner.hpp); descriptors travel beside it. Decoding
// fills `plan` with pointers into `strings` and `filter`; false if the bytes are not a plan.
std::string encode_plan(const ChildPlan& plan);
bool decode_plan(std::string_view bytes, ChildPlan& plan, Strings& strings,
                 std::vector<sock_filter>& filter);

// The sandbox's PID 1: sets up the filesystem, starts the command, reaps every process and
// reports the command's status. Never returns.
// PID 1 runs on its own copy of the plan, and changes the command's part of it for each command
// of a recycled sandbox.
[[noreturn]] WARREN_CHILD_CODE void sandbox_init(ChildPlan& plan);

// Every signal's action to the default (an ignored signal would stay ignored across exec).
WARREN_CHILD_CODE void reset_signal_actions();

// Setup failure reporting from the child: "<before><what>: <strerror>" on the error pipe, then
// exit.
[[noreturn]] WARREN_CHILD_CODE void child_fail(const ChildPlan& plan, const char* what, int err,
                                               const char* before = "");

}  // namespace warren::sandbox::detail
