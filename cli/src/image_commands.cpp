// `warren image list|build|pull|import|prune`: the task images of the store (image/).
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "io.hpp"
#include "run_commands.hpp"
#include "warren/image/image.hpp"

namespace warren::cli {

namespace {

using Json = nlohmann::ordered_json;

struct ImageFlags {
  std::string store, path, name, dockerfile = "Dockerfile", workdir;
  std::vector<std::string> also;
  bool json = false, bases = false;
  double timeout = 3600;  // seconds a build may take (0: no limit)
  std::string keep_free;  // bytes the store's disk keeps free ("": image::keep_free_default)
};

int fail(const std::string& command, const std::string& message) {
  std::cerr << "warren image " << command << ": " << message << "\n";
  return command == "build" || command == "import" || command == "pull" ? 1 : 2;
}

Json image_json(const image::Image& i) {
  return {{"name", i.name},
          {"key", i.key},
          {"id", i.id},
          {"base", i.base},
          {"source", i.source},
          {"layers", i.layers},
          {"bytes", i.bytes},
          {"workdir", i.workdir},
          {"env", i.env},
          {"user", i.user},
          {"entrypoint", i.entrypoint},
          {"cmd", i.cmd},
          {"created", i.created}};
}

std::string size_text(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

std::string when(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M", &utc);
  return text;
}

void print_images(const std::vector<image::Image>& images, bool json) {
  if (json) {
    Json all = Json::array();
    for (const auto& i : images) all.push_back(image_json(i));
    std::cout << json_text(all, 2) << "\n";
    return;
  }
  // The name column as wide as the longest name (registry names run to 60 characters and more).
  int width = 4;
  for (const auto& i : images) width = std::max(width, static_cast<int>(printable(i.name).size()));
  std::printf("%-8s %-*s %10s  %-16s  %s\n", "KIND", width, "NAME", "SIZE", "CREATED (UTC)",
              "SOURCE");
  for (const auto& i : images)
    std::printf("%-8s %-*s %10s  %-16s  %s\n", i.base ? "base" : "built", width,
                printable(i.name).c_str(), size_text(i.bytes).c_str(), when(i.created).c_str(),
                printable(i.source).c_str());
}

// One image a command gave: "NAME SIZE, N layers", or its JSON.
void print_image(const image::Image& i, bool json) {
  if (json)
    std::cout << json_text(image_json(i), 2) << "\n";
  else
    std::printf("%s %s, %zu layers\n", i.name.c_str(), size_text(i.bytes).c_str(), i.layers.size());
}

int list(const ImageFlags& f) {
  auto store = image::Store::open(f.store);
  if (!store) return fail("list", store.error().message);
  auto images = store->list();
  if (!images) return fail("list", images.error().message);
  print_images(*images, f.json);
  return 0;
}

int build(const ImageFlags& f) {
  auto store = image::Store::open(f.store);
  if (!store) return fail("build", store.error().message);
  const std::string label = std::filesystem::path(f.path).filename().string();
  image::BuildRequest request{.context = f.path,
                              .dockerfile = f.dockerfile,
                              .label = label,
                              .retry_failed = true,
                              .timeout = std::chrono::seconds(static_cast<long long>(f.timeout))};
  if (!f.keep_free.empty()) {
    request.keep_free = parse_size(f.keep_free);
    if (!request.keep_free) {  // bad input: exit 2, where a failed build is 1
      std::cerr << "warren image build: --keep-free " << f.keep_free
                << " is not a size (512M, 2G)\n";
      return 2;
    }
  }
  auto built = store->build(
      request, [](const std::string& line) { std::cerr << "warren: " << line << "\n"; });
  if (!built) return fail("build", built.error().message);
  print_image(*built, f.json);
  return 0;
}

int pull(const ImageFlags& f) {
  auto store = image::Store::open(f.store);
  if (!store) return fail("pull", store.error().message);
  auto pulled =
      store->pull(f.name, [](const std::string& line) { std::cerr << "warren: " << line << "\n"; });
  if (!pulled) return fail("pull", pulled.error().message);
  print_image(*pulled, f.json);
  return 0;
}

int import(const ImageFlags& f) {
  auto store = image::Store::open(f.store);
  if (!store) return fail("import", store.error().message);
  auto imported = store->import(f.name, f.path, f.workdir, f.also);
  if (!imported) return fail("import", imported.error().message);
  if (f.json) {
    Json out = image_json(*imported);
    out["also"] = f.also;
    std::cout << json_text(out, 2) << "\n";
  } else {
    std::printf("%s %s\n", imported->name.c_str(), size_text(imported->bytes).c_str());
    for (const std::string& name : f.also) std::printf("%s (the same image)\n", name.c_str());
  }
  return 0;
}

int prune(const ImageFlags& f) {
  auto store = image::Store::open(f.store);
  if (!store) return fail("prune", store.error().message);
  auto removed = store->prune(f.bases);
  if (!removed) return fail("prune", removed.error().message);
  std::uint64_t bytes = 0;
  for (const auto& i : *removed) bytes += i.base ? 0 : i.bytes;
  if (f.json) {
    Json out = {{"removed", Json::array()}, {"bytes", bytes}};
    for (const auto& i : *removed) out["removed"].push_back(image_json(i));
    std::cout << json_text(out, 2) << "\n";
  } else {
    std::printf("removed %zu image(s), %s\n", removed->size(), size_text(bytes).c_str());
  }
  return 0;
}

}  // namespace

void add_image_commands(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ImageFlags>();
  CLI::App* group = app.add_subcommand(
      "image", "task environments built from Dockerfiles (buildah), cached and listed");
  group->require_subcommand(1);
  auto store_flag = [&](CLI::App* c) {
    c->add_option("--store", flags->store,
                  "the image store (default: $WARREN_IMAGES, else ~/.cache/warren/images)");
    c->add_flag("--json", flags->json, "print JSON");
  };
  CLI::App* ls = group->add_subcommand("list", "the built and imported images, with sizes");
  store_flag(ls);
  ls->callback([flags, &exit_code] { exit_code = list(*flags); });

  CLI::App* b = group->add_subcommand("build", "build (or find cached) the image of a folder");
  b->add_option("context", flags->path, "the build context: a task's folder")->required();
  b->add_option("-f,--file", flags->dockerfile, "the Dockerfile, relative to the context");
  b->add_option("--timeout", flags->timeout,
                "seconds the build may take before it is stopped (default 3600; 0: no limit)")
      ->check(CLI::NonNegativeNumber);
  b->add_option("--keep-free", flags->keep_free,
                "free space the build leaves on the store's disk, else it is stopped (512M, 2G; "
                "default: 5% of the disk, at most 4G)");
  store_flag(b);
  b->callback([flags, &exit_code] { exit_code = build(*flags); });

  CLI::App* pl = group->add_subcommand(
      "pull", "fetch an image to run on as it is (SWE-bench's per-instance images), once");
  pl->add_option("name", flags->name, "the image's full name: docker.io/swebench/sweb.eval...")
      ->required();
  store_flag(pl);
  pl->callback([flags, &exit_code] { exit_code = pull(*flags); });

  CLI::App* i = group->add_subcommand(
      "import", "make a base image from a root folder or tar archive, under the name FROM uses");
  i->add_option("name", flags->name, "the image's name, as a Dockerfile's FROM names it")
      ->required();
  i->add_option("path", flags->path, "a root folder, or a tar archive of one")->required();
  i->add_option("--workdir", flags->workdir,
                "the image's WORKDIR, as the image it stands in for has it (t-bench's: /app)");
  i->add_option("--also", flags->also,
                "another name the same image stands in for (one root for several bases); "
                "repeat for more")
      ->allow_extra_args(false);
  store_flag(i);
  i->callback([flags, &exit_code] { exit_code = import(*flags); });

  CLI::App* p = group->add_subcommand("prune", "remove the built images (and their layers)");
  p->add_flag("--bases", flags->bases, "remove the imported and pulled base images too");
  store_flag(p);
  p->callback([flags, &exit_code] { exit_code = prune(*flags); });
}

}  // namespace warren::cli
