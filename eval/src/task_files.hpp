// A task's own files, read as data beneath its folder. Task collections are untrusted: a path a
// task names (a Dockerfile's COPY source, solution.sh, tests/) is resolved beneath the task's
// folder with openat2(RESOLVE_BENEATH), so an absolute path, "..", or a link that leads out of
// the folder is refused with the reason, and only regular files are read (a fifo or a device
// would block the harness or reach the operator's terminal).
#pragma once

#include <cstdint>
#include <string>

#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

enum class TaskEntry { Missing, File, Directory, Other };

class TaskFolder {
 public:
  // `dir` is trusted (the operator named it, or it is a folder of a suite the operator named).
  static Result<TaskFolder> open(const std::string& dir);
  TaskFolder(TaskFolder&& other) noexcept;
  TaskFolder& operator=(TaskFolder&&) = delete;
  TaskFolder(const TaskFolder&) = delete;
  ~TaskFolder();

  // What `relative` names beneath the folder; Other also for a path refused as leading out.
  TaskEntry entry(const std::string& relative) const;
  // The whole regular file `relative`, at most `max_bytes`. `what` names it in errors.
  Result<std::string> read(const std::string& relative, const std::string& what,
                           std::uint64_t max_bytes = 64 << 20) const;
  const std::string& path() const { return path_; }

 private:
  TaskFolder(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

// Whether `relative` names something beneath its folder on its face: not absolute, no "..".
bool plainly_beneath(const std::string& relative);

}  // namespace warren::eval::detail
