// The images of a suite's tasks, built before their trials start (image/ builds and caches them).
#include <filesystem>
#include <map>

#include "warren/eval/eval.hpp"
#include "warren/image/image.hpp"

namespace warren::eval {

void prepare_images(const std::vector<Task*>& tasks, const EvalSettings& settings,
                    const std::function<void(const std::string&)>& log) {
  std::vector<Task*> building;
  for (Task* t : tasks)
    if (t->load_error.empty() && !t->environment.needs_image.empty() &&
        !t->environment.dockerfile.empty())
      building.push_back(t);
  if (building.empty() || !settings.rootfs.empty()) return;
  auto store = image::Store::open(settings.images);
  // Tasks that share a Dockerfile and context share one build (the store's key says so too; this
  // spares the second its context's hashing).
  std::map<std::string, image::Result<image::Image>> built;
  for (Task* t : building) {
    if (!store) {
      t->load_error = "its Dockerfile needs an image build: " + store.error().message;
      continue;
    }
    const std::filesystem::path context = std::filesystem::path(t->dir) / t->environment.context;
    const std::string dockerfile =
        std::filesystem::path(t->environment.dockerfile).lexically_relative(t->environment.context);
    const std::string id = context.string() + "\n" + dockerfile;
    auto found = built.find(id);
    if (found == built.end())
      found = built.emplace(id, store->build({context.string(), dockerfile, t->name}, log)).first;
    if (!found->second) {
      t->load_error = found->second.error().message;
      continue;
    }
    Environment::Image& image = t->environment.image;
    image.rootfs = found->second->rootfs;
    image.workdir = found->second->workdir;
    image.env = found->second->env;
  }
}

}  // namespace warren::eval
