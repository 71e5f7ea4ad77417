// The images of a suite's tasks (images.hpp): built in the background by image/, which caches
// them, while the trials of the tasks that are ready run.
#include "images.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "warren/image/image.hpp"

namespace warren::eval::detail {

namespace {

// Builds at once: a build waits mostly on downloads and on dpkg's writes, so a few overlap well
// even on two cores; more would only compete for the disk.
constexpr std::size_t kParallelBuilds = 3;

// The builds `tasks` need, one per Dockerfile and context (tasks that share both share a build;
// the store's key says so too, and this spares the others the hashing of their context), in the
// tasks' order. A task whose image cannot be had gets its load_error now.
// One image a task needs: its own (service -1) or one of its compose services'.
struct Target {
  Task* task;
  int service;
};

struct Build {
  image::BuildRequest request;
  std::string pull;  // an image run as it is (SWE-bench's, a service's `image:`): pulled, not built
  std::vector<Target> targets;
  std::optional<image::Result<image::Image>> result;  // written by one builder thread
};

std::vector<Build> plan_builds(const std::vector<Task*>& tasks, const EvalSettings& settings,
                               std::optional<image::Store>& store) {
  std::vector<Build> builds;
  auto wants_image = [&](const Task* t) {
    return !t->environment.image_name.empty() || !t->environment.services.empty() ||
           (settings.rootfs.empty() && !t->environment.dockerfile.empty());
  };
  if (std::none_of(tasks.begin(), tasks.end(), wants_image))
    return builds;  // no store is opened (or made) for a suite without images
  auto opened = image::Store::open(settings.images);
  if (opened) store.emplace(std::move(*opened));
  // A Dockerfile that needs no build (FROM, WORKDIR, ENV, COPY into the workdir) is built all the
  // same when its base image is here, imported or pulled before: the task then runs on its own
  // image, as its harness runs it, rather than on the host's system view. Asked once per base.
  // A task with compose services always runs on its image: its name resolves in its root's hosts.
  std::map<std::string, bool> base_here;
  auto on_its_image = [&](const Task& t) {
    const Environment& e = t.environment;
    if (!e.image_name.empty() || !e.needs_image.empty() || !e.services.empty()) return true;
    if (!store || e.base_image.empty()) return false;
    auto [at, added] = base_here.emplace(e.base_image, false);
    if (added) at->second = store->has_image(e.base_image);
    return at->second;
  };
  std::map<std::string, std::size_t> index;
  auto add = [&](Target target, const std::string& dockerfile_path, const std::string& context_dir,
                 const std::string& pull) {
    Task* t = target.task;
    const std::filesystem::path context = std::filesystem::path(t->dir) / context_dir;
    const std::string dockerfile =
        std::filesystem::path(dockerfile_path).lexically_relative(context_dir);
    auto [at, added] = index.emplace(
        pull.empty() ? context.string() + "\n" + dockerfile : "pull\n" + pull, builds.size());
    if (added) {
      Build& b = builds.emplace_back();
      b.request = {.context = pull.empty() ? context.string() : "",
                   .dockerfile = dockerfile,
                   .label = target.service < 0 ? t->name
                                               : t->name + "'s service " +
                                                     t->environment.services[target.service].name};
      b.pull = pull;
    }
    builds[at->second].targets.push_back(target);
  };
  for (Task* t : tasks) {
    if (!t->load_error.empty() || !wants_image(t) || !on_its_image(*t)) continue;
    const Environment& e = t->environment;
    if (!store) {
      t->load_error =
          (e.image_name.empty() ? "its Dockerfile needs an image build: "
                                : "its image " + e.image_name + " needs the image store: ") +
          opened.error().message;
      continue;
    }
    add({t, -1}, e.dockerfile, e.context, e.image_name);
    for (std::size_t i = 0; i < e.services.size(); ++i)
      add({t, static_cast<int>(i)}, e.services[i].dockerfile, e.services[i].context,
          e.services[i].image_name);
  }
  return builds;
}

}  // namespace

// Shared with the handlers posted to the executor, which may run after the ImageBuilds is gone
// (then `closed` is set and they do nothing).
struct ImageBuilds::State {
  explicit State(boost::asio::any_io_executor on) : executor(on), wake(on) {
    wake.expires_at(boost::asio::steady_timer::time_point::max());
  }
  std::optional<image::Store> store;
  std::vector<Build> builds;
  std::map<const Task*, int> pending;  // images still to settle, by task; executor's thread only
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stopping{false};
  bool closed = false;  // on the executor's thread only
  std::mutex log_mutex;
  std::function<void(const std::string&)> log;
  boost::asio::any_io_executor executor;
  boost::asio::steady_timer wake;  // never expires: cancelled to wake every waiter
  Settled settled;

  void say(const std::string& line) {
    if (!log) return;
    std::lock_guard lock(log_mutex);
    log(line);
  }
  // On the executor: the build's result into its tasks, and every waiting trial woken. A task is
  // settled once all of its images are (its own and its services').
  void settle(Build& build) {
    if (closed) return;
    for (const Target& target : build.targets) {
      Task* t = target.task;
      const image::Result<image::Image>& result = *build.result;
      Environment::Image& slot =
          target.service < 0 ? t->environment.image : t->environment.services[target.service].image;
      if (!result) {
        if (t->load_error.empty())
          t->load_error = target.service >= 0 && !build.pull.empty()
                              ? "service " + t->environment.services[target.service].name + ": " +
                                    result.error().message
                              : result.error().message;
      } else {
        slot = {result->layers, result->workdir, result->env, result->entrypoint, result->cmd};
      }
      if (--pending[t] == 0) {
        pending.erase(t);
        if (settled) settled(*t);
      }
    }
    wake.cancel();
  }
};

ImageBuilds::ImageBuilds(const std::vector<Task*>& tasks, const EvalSettings& settings,
                         std::function<void(const std::string&)> log,
                         boost::asio::any_io_executor executor, Settled settled)
    : state_(std::make_shared<State>(executor)) {
  state_->log = std::move(log);
  state_->settled = std::move(settled);
  state_->builds = plan_builds(tasks, settings, state_->store);
  for (const Build& b : state_->builds)
    for (const Target& target : b.targets) ++state_->pending[target.task];
  auto builder = [state = state_] {
    for (std::size_t i; !state->stopping && (i = state->next++) < state->builds.size();) {
      Build& build = state->builds[i];
      auto say = [&](const std::string& line) { state->say(line); };
      build.result = build.pull.empty() ? state->store->build(build.request, say)
                                        : state->store->pull(build.pull, say);
      boost::asio::post(state->executor, [state, &build] { state->settle(build); });
    }
  };
  for (std::size_t n = 0; n < std::min(kParallelBuilds, state_->builds.size()); ++n)
    builders_.emplace_back(builder);
}

ImageBuilds::~ImageBuilds() {
  state_->stopping = true;
  state_->closed = true;
  for (std::thread& b : builders_) b.join();
}

bool ImageBuilds::waiting(const Task& task) const {
  return state_->pending.contains(&task);
}

bool ImageBuilds::done() const {
  return state_->pending.empty();
}

boost::asio::awaitable<void> ImageBuilds::async_wait_settled() {
  if (done()) co_return;
  boost::system::error_code cancelled;
  co_await state_->wake.async_wait(
      boost::asio::redirect_error(boost::asio::use_awaitable, cancelled));
}

}  // namespace warren::eval::detail

namespace warren::eval {

void prepare_images(const std::vector<Task*>& tasks, const EvalSettings& settings,
                    const std::function<void(const std::string&)>& log) {
  boost::asio::io_context io;
  // Held while builds are pending: without it, an io_context with nothing queued yet stops, and
  // would never run the results the builders post.
  auto pending = boost::asio::make_work_guard(io);
  detail::ImageBuilds builds(tasks, settings, log, io.get_executor());
  while (!builds.done()) io.run_one();
}

}  // namespace warren::eval
