// The images of a suite's tasks, built before their trials start (image/ builds and caches them).
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "warren/eval/eval.hpp"
#include "warren/image/image.hpp"

namespace warren::eval {

namespace {

// Builds at once: a build waits mostly on downloads and on dpkg's writes, so a few overlap well
// even on two cores; more would only compete for the disk.
constexpr std::size_t kParallelBuilds = 3;

}  // namespace

void prepare_images(const std::vector<Task*>& tasks, const EvalSettings& settings,
                    const std::function<void(const std::string&)>& log) {
  if (!settings.rootfs.empty()) return;
  if (std::none_of(tasks.begin(), tasks.end(),
                   [](const Task* t) { return !t->environment.dockerfile.empty(); }))
    return;  // no store is opened (or made) for a suite without Dockerfiles
  auto store = image::Store::open(settings.images);
  // A Dockerfile that needs no build (FROM, WORKDIR, ENV, COPY into the workdir) is built all the
  // same when its base image is here, imported or pulled before: the task then runs on its own
  // image, as its harness runs it, rather than on the host's system view. Asked once per base.
  std::map<std::string, bool> base_here;
  auto on_its_image = [&](const Task& t) {
    if (!t.environment.needs_image.empty()) return true;
    if (!store || t.environment.base_image.empty()) return false;
    auto [at, added] = base_here.emplace(t.environment.base_image, false);
    if (added) at->second = store->has_image(t.environment.base_image);
    return at->second;
  };
  // Tasks that share a Dockerfile and context share one build (the store's key says so too; this
  // spares the others the hashing of their context).
  std::map<std::string, image::BuildRequest> requests;
  std::map<Task*, std::string> wanted;
  for (Task* t : tasks) {
    if (!t->load_error.empty() || t->environment.dockerfile.empty() || !on_its_image(*t)) continue;
    const std::filesystem::path context = std::filesystem::path(t->dir) / t->environment.context;
    const std::string dockerfile =
        std::filesystem::path(t->environment.dockerfile).lexically_relative(t->environment.context);
    const std::string id = context.string() + "\n" + dockerfile;
    requests.emplace(id, image::BuildRequest{context.string(), dockerfile, t->name});
    wanted[t] = id;
  }
  if (requests.empty()) return;
  if (!store) {
    for (auto& [t, id] : wanted)
      t->load_error = "its Dockerfile needs an image build: " + store.error().message;
    return;
  }

  std::vector<std::pair<std::string, image::BuildRequest>> queue(requests.begin(), requests.end());
  std::vector<std::optional<image::Result<image::Image>>> results(queue.size());
  std::atomic<std::size_t> next{0};
  std::mutex log_mutex;
  auto say = [&](const std::string& line) {
    if (!log) return;
    std::lock_guard lock(log_mutex);
    log(line);
  };
  auto builder = [&] {
    for (std::size_t i; (i = next++) < queue.size();)
      results[i] = store->build(queue[i].second, say);
  };
  std::vector<std::thread> builders;
  for (std::size_t n = 0; n < std::min(kParallelBuilds, queue.size()); ++n)
    builders.emplace_back(builder);
  for (std::thread& b : builders) b.join();

  std::map<std::string, const image::Result<image::Image>*> built;
  for (std::size_t i = 0; i < queue.size(); ++i) built[queue[i].first] = &*results[i];
  for (auto& [t, id] : wanted) {
    const image::Result<image::Image>& result = *built[id];
    if (!result) {
      t->load_error = result.error().message;
      continue;
    }
    Environment::Image& image = t->environment.image;
    image.layers = result->layers;
    image.workdir = result->workdir;
    image.env = result->env;
  }
}

}  // namespace warren::eval
