// The images of a suite's tasks, built while the trials of other tasks already run (images.cpp).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>  // before Asio 1.74, which uses std::exchange without it
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "warren/eval/eval.hpp"

namespace warren::eval::detail {

// Builds (or finds cached) the image of each task that needs one, in threads of its own, so that
// a task's trials wait for its own image only and the tasks with nothing to build (or whose image
// is cached) start at once. Which tasks run on an image: prepare_images (eval.hpp).
//
// Invariant: a Task is only ever written on `executor`'s thread. A build's result is posted
// there, where it fills the task's Environment::image, or its load_error when the build failed;
// the build threads touch nothing but their own requests and results.
class ImageBuilds {
 public:
  using Settled = std::function<void(Task&)>;  // run on the executor, as each task's image settles

  ImageBuilds(const std::vector<Task*>& tasks, const EvalSettings& settings,
              std::function<void(const std::string&)> log, boost::asio::any_io_executor executor,
              Settled settled = {});
  // Builds not begun are dropped, those under way waited for; results still to be posted touch
  // nothing.
  ~ImageBuilds();
  ImageBuilds(const ImageBuilds&) = delete;
  ImageBuilds& operator=(const ImageBuilds&) = delete;

  // Whether `task`'s image is still to be settled (its trials must wait).
  bool waiting(const Task& task) const;
  // Whether every image is settled.
  bool done() const;
  // Until another image settles (at once when none is pending).
  boost::asio::awaitable<void> async_wait_settled();

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::vector<std::thread> builders_;
};

}  // namespace warren::eval::detail
