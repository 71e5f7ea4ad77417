// The image store: builds cached by key, imported base images, listing and pruning. Layout:
// store_layout.hpp.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "store_layout.hpp"

namespace warren::image {

namespace {

namespace fs = std::filesystem;
using detail::Buildah;
using nlohmann::json;

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json to_json(const Image& image) {
  return {{"key", image.key},       {"name", image.name},
          {"source", image.source}, {"id", image.id},
          {"layers", image.layers}, {"workdir", image.workdir},
          {"env", image.env},       {"user", image.user},
          {"bytes", image.bytes},   {"entrypoint", image.entrypoint},
          {"cmd", image.cmd},       {"created", image.created},
          {"base", image.base}};
}

std::optional<Image> read_record(const fs::path& file) {
  std::ifstream in(file);
  const json j = json::parse(in, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  Image image;
  image.key = j.value("key", "");
  image.name = j.value("name", "");
  image.source = j.value("source", "");
  image.id = j.value("id", "");
  image.layers = j.value("layers", std::vector<std::string>{});
  image.workdir = j.value("workdir", "");
  image.env = j.value("env", std::vector<std::string>{});
  image.user = j.value("user", "");
  image.entrypoint = j.value("entrypoint", std::vector<std::string>{});
  image.cmd = j.value("cmd", std::vector<std::string>{});
  image.bytes = j.value("bytes", std::uint64_t{0});
  image.created = j.value("created", std::int64_t{0});
  image.base = j.value("base", false);
  return image;
}

// Written whole under another name, then renamed: a reader finds the old record or the new one.
Result<void> write_record(const fs::path& file, const Image& image) {
  const fs::path partial = file.string() + ".partial";
  {
    std::ofstream out(partial);
    out << to_json(image).dump(2) << "\n";
    if (!out) return tl::unexpected(Error{"cannot write " + partial.string()});
  }
  std::error_code ec;
  fs::rename(partial, file, ec);
  if (ec) return tl::unexpected(Error{"cannot write " + file.string() + ": " + ec.message()});
  return {};
}

// The record file of the base image `name`: the name with what a file name cannot hold replaced.
std::string base_record(const std::string& name) {
  std::string file = name;
  for (char& c : file)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return file + ".json";
}

// Held while one key is built, across threads and processes.
class KeyLock {
 public:
  explicit KeyLock(const fs::path& file)
      : fd_(open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ >= 0)
      while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
      }
  }
  ~KeyLock() {
    if (fd_ >= 0) close(fd_);
  }
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

 private:
  int fd_;
};

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The last `bytes` of `file` (a build's log, which may be as large as its limit).
std::string read_tail(const fs::path& file, std::size_t bytes) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  const std::streamoff size = in.tellg();
  if (size <= 0) return "";
  in.seekg(std::max<std::streamoff>(0, size - static_cast<std::streamoff>(bytes)));
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A failed build's error: the base image that could not be pulled, named with the remedy, or the
// log's last lines.
Error build_error(const BuildRequest& request, const std::string& dockerfile,
                  const std::string& log_text, const fs::path& log) {
  const std::string tail = detail::last_lines(log_text, 6);
  for (const std::string& base : detail::base_images(dockerfile)) {
    // What buildah 1.28 says when a registry does not answer, refuses, or is not known for a
    // short name (no unqualified-search registries configured).
    const bool pulling = log_text.find("pinging container registry") != std::string::npos ||
                         log_text.find("initializing source") != std::string::npos ||
                         log_text.find("pull access denied") != std::string::npos ||
                         log_text.find("did not resolve to an alias") != std::string::npos;
    if (pulling && log_text.find(base) != std::string::npos)
      return Error{request.label + ": the base image " + base + " cannot be pulled here (" +
                   detail::last_lines(log_text, 1) + "); `warren image import " + base +
                   " DIR|TAR` stands one in. Log: " + log.string()};
  }
  std::string flat = tail;
  std::replace(flat.begin(), flat.end(), '\n', ' ');
  return Error{request.label + ": the image build failed (" + flat + "). Log: " + log.string()};
}

// A name as Docker reads it (a Dockerfile's, a compose file's): one whose first part names no
// registry (no "." or ":" in it, not localhost) is Docker Hub's, and one of a single part is in
// its library/ (postgres:15 is docker.io/library/postgres:15). buildah, with no
// unqualified-search registries configured, would refuse such a short name.
std::string docker_reference(const std::string& name) {
  const std::size_t slash = name.find('/');
  const std::string first = slash == std::string::npos ? "" : name.substr(0, slash);
  if (!first.empty() && (first.find_first_of(".:") != std::string::npos || first == "localhost"))
    return name;
  return slash == std::string::npos ? "docker.io/library/" + name : "docker.io/" + name;
}

// Forgets every remembered build failure: after an import (a base that could not be pulled may
// be here now) and a prune.
void forget_failures(const fs::path& store) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(store / "failed", ec))
    fs::remove(entry.path(), ec);
}

// An error when the disk of the store `store_dir` already has less than `keep_free` free.
Result<void> room_for(const std::string& store_dir, std::uint64_t keep_free,
                      const std::string& what) {
  const std::uint64_t free = detail::free_bytes(store_dir);
  if (free >= keep_free) return {};
  return tl::unexpected(Error{what + ": the image store's disk (" + store_dir + ") has " +
                              std::to_string(free >> 20) + " MiB free, less than the " +
                              std::to_string(keep_free >> 20) +
                              " MiB kept free: `warren image prune` removes unused images"});
}

}  // namespace

std::string default_store_dir() {
  if (const char* set = std::getenv("WARREN_IMAGES"); set && *set) return set;
  if (const char* cache = std::getenv("XDG_CACHE_HOME"); cache && *cache)
    return std::string(cache) + "/warren/images";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/root") + "/.cache/warren/images";
}

std::uint64_t keep_free_default(const std::string& store_dir) {
  struct statvfs disk {};
  if (statvfs(store_dir.c_str(), &disk) != 0) return 0;
  const std::uint64_t size = static_cast<std::uint64_t>(disk.f_blocks) * disk.f_frsize;
  return std::min(size / 20, std::uint64_t{4} << 30);
}

Result<Store> Store::open(std::string dir) {
  if (dir.empty()) dir = default_store_dir();
  std::error_code ec;
  dir = fs::absolute(dir, ec).lexically_normal().string();
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  // Made private below: a folder that holds anything but a store is refused, so that a mistyped
  // --store (/tmp, a home) is never made 0700.
  if (fs::exists(dir, ec) && !fs::is_empty(dir, ec) && !fs::is_directory(fs::path(dir) / "storage"))
    return tl::unexpected(Error{dir + " is not an image store (it holds other files): name a new "
                                      "or empty folder"});
  fs::create_directories(dir, ec);
  if (ec)
    return tl::unexpected(Error{"cannot create the image store " + dir + ": " + ec.message()});
  // An image holds set-id programs and whatever its build wrote: its owner's alone.
  if (chmod(dir.c_str(), 0700) != 0)
    return tl::unexpected(Error{"cannot make " + dir + " private: " + std::strerror(errno)});
  for (const char* sub : {"storage", "run", "images", "bases", "failed", "logs", "locks", "tmp"})
    fs::create_directories(fs::path(dir) / sub, ec);
  if (ec)
    return tl::unexpected(Error{"cannot lay out the image store " + dir + ": " + ec.message()});
  return Store(dir);
}

Result<std::string> Store::key_of(const BuildRequest& request) const {
  if (const std::string bad =
          detail::unsafe_image_name(read_text(fs::path(request.context) / request.dockerfile));
      !bad.empty())
    return tl::unexpected(Error{"its Dockerfile names " + bad});
  // The bases the Dockerfile names, by the ids they have here: a base imported or pulled anew is
  // a new key, as Docker's build cache is keyed by the parent image. A base not here yet counts as
  // such; build() pulls it before it keys the build.
  const Buildah buildah(dir_);
  std::vector<std::string> bases;
  for (const std::string& base :
       detail::base_images(read_text(fs::path(request.context) / request.dockerfile))) {
    auto id = detail::image_id(buildah, base);
    if (!id && docker_reference(base) != base)
      id = detail::image_id(buildah, docker_reference(base));
    bases.push_back(base + " " + (id ? *id : "-"));
  }
  return detail::context_key(request.context, request.dockerfile, bases);
}

// The image a record describes, with its layers as the builder's storage has them now; nothing
// when the record is missing or its image has gone from the storage (built again, then).
std::optional<Image> Store::cached(const std::string& key) const {
  const fs::path store = dir_, record = store / "images" / (key + ".json");
  auto image = read_record(record);
  if (!image) return std::nullopt;
  if (image->id.empty()) {  // a record from before layers were stacked: its root was a copy
    auto id = detail::image_id(detail::Buildah(dir_), image->name);
    if (!id) return std::nullopt;
    image->id = *id;
    std::error_code ec;
    fs::remove_all(store / "roots" / key, ec);
  }
  auto layers = detail::image_layers(dir_, image->id);
  if (!layers) return std::nullopt;
  image->layers = std::move(layers->folders);
  image->bytes = layers->bytes;
  return image;
}

Result<Image> Store::build(const BuildRequest& request, const Progress& progress) const {
  auto key = key_of(request);
  if (!key) return tl::unexpected(Error{request.label + ": " + key.error().message});
  const fs::path store = dir_;
  if (auto image = cached(*key)) return *image;
  KeyLock lock(store / "locks" / *key);
  if (auto image = cached(*key)) return *image;  // built while this one waited
  // A failed build is remembered by its key: an evaluation that meets it again (21 Terminal-Bench
  // tasks need PyPI, unreachable here, and each took minutes to fail) is told at once.
  const fs::path failure = store / "failed" / *key;
  if (!request.retry_failed)
    if (std::string remembered = read_text(failure); !remembered.empty())
      return tl::unexpected(Error{request.label + ": " + remembered +
                                  " (remembered from an earlier build; `warren image build` tries "
                                  "again, `warren image prune` forgets it)"});

  const std::string dockerfile_text = read_text(fs::path(request.context) / request.dockerfile);
  const Buildah buildah(dir_);
  const std::string version = buildah.version();
  if (version.empty())
    return tl::unexpected(Error{"buildah cannot be run: scripts/setup.sh installs it"});
  if (detail::uses_heredoc(dockerfile_text) && !detail::at_least(version, 1, 33))
    return tl::unexpected(Error{request.label +
                                ": its Dockerfile uses a heredoc (RUN <<EOF), which needs "
                                "buildah 1.33 or newer; this one is " +
                                version});
  const std::uint64_t keep_free = request.keep_free.value_or(keep_free_default(dir_));
  if (auto room = room_for(dir_, keep_free, request.label); !room)
    return tl::unexpected(room.error());
  Image image;
  image.key = *key;
  image.name = "warren/build-" + key->substr(0, 16);
  image.source =
      fs::absolute(fs::path(request.context) / request.dockerfile).lexically_normal().string();
  const fs::path log = store / "logs" / (*key + ".log");
  if (progress) progress("building the image of " + request.label + " (log: " + log.string() + ")");
  const auto started = std::chrono::steady_clock::now();
  {
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (log_fd < 0)
      return tl::unexpected(Error{"cannot write " + log.string() + ": " + std::strerror(errno)});
    // --force-rm: a failed build's working container would otherwise stay, mounted, holding its
    // layers (a Terminal-Bench run left 36, several GB).
    std::vector<std::string> args = {"bud", "--layers", "--force-rm", "--quiet=false"};
    for (const std::string& a : buildah.runtime_args()) args.push_back(a);
    for (const std::string& a :
         {std::string("-f"), image.source, std::string("-t"), image.name, request.context})
      args.push_back(a);
    // A build killed for a limit leaves its working container, with all its RUN step wrote:
    // found by the mounts of the build's namespace while it still runs, removed once it has ended.
    std::vector<std::string> stopped;
    auto built = buildah.run(
        args, log_fd,
        {.timeout = request.timeout,
         .log_bytes = request.log_bytes,
         .disk = dir_,
         .keep_free = keep_free,
         .before_kill = [&](pid_t pid) { stopped = detail::mounted_containers(pid, dir_); }});
    close(log_fd);
    for (const std::string& container : stopped) (void)buildah.run({"rm", container});
    if (!built) return tl::unexpected(built.error());
    if (built->status != 0) {
      Error error =
          built->over_limit == detail::ToolLimit::none
              ? build_error(request, dockerfile_text, read_tail(log, 64 << 10), log)
              : Error{request.label + ": the image build was stopped: " + built->over_limit_text +
                      ". Log: " + log.string()};
      // The disk is shared: another build or program may have filled it. Only what the task
      // itself does is held against it next time.
      if (built->over_limit != detail::ToolLimit::disk)
        std::ofstream(failure) << error.message.substr(request.label.size() + 2);
      return tl::unexpected(std::move(error));
    }
  }
  auto id = detail::image_id(buildah, image.name);
  if (!id) return tl::unexpected(Error{request.label + ": " + id.error().message});
  image.id = *id;
  auto layers = detail::image_layers(dir_, image.id);
  if (!layers) return tl::unexpected(Error{request.label + ": " + layers.error().message});
  image.layers = std::move(layers->folders);
  image.bytes = layers->bytes;
  if (auto read = detail::read_config(buildah, image.name, image); !read)
    return tl::unexpected(read.error());
  image.created = now_seconds();
  // A base the build pulled is here now: the record goes under the key that names its id, the
  // one every later lookup computes.
  if (auto settled = key_of(request); settled && *settled != *key) image.key = *settled;
  if (auto written = write_record(store / "images" / (image.key + ".json"), image); !written)
    return tl::unexpected(written.error());
  std::error_code ec;
  fs::remove(failure, ec);
  if (progress) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    char line[256];
    std::snprintf(line, sizeof line, "built the image of %s in %.1f s: %.1f MB",
                  request.label.c_str(), seconds, static_cast<double>(image.bytes) / 1e6);
    progress(line);
  }
  return image;
}

Result<Image> Store::import(const std::string& name, const std::string& path,
                            const std::string& workdir,
                            const std::vector<std::string>& also) const {
  std::error_code ec;
  const bool folder = fs::is_directory(path, ec);
  if (!folder && !fs::is_regular_file(path, ec))
    return tl::unexpected(Error{path + " is neither a root folder nor a tar archive of one"});
  std::vector<std::string> names = {name};
  names.insert(names.end(), also.begin(), also.end());
  for (const std::string& n : names)
    if (n.empty() || n.find_first_of(" \t\n") != std::string::npos)
      return tl::unexpected(Error{"'" + n + "' is not an image name"});
  const fs::path store = dir_;
  std::string archive = fs::absolute(path).string();
  fs::path made;
  if (folder) {  // buildah adds an archive with its owners; a folder would be copied as root's
    made = store / "tmp" / ("import-" + std::to_string(getpid()) + ".tar");
    auto packed = detail::run_tool(
        {"tar", "--numeric-owner", "--xattrs", "-C", archive, "-cf", made.string(), "."});
    if (!packed || packed->status != 0)
      return tl::unexpected(
          Error{"cannot pack " + path + ": " +
                (packed ? detail::last_lines(packed->err, 1) : packed.error().message)});
    archive = made.string();
  }
  const Buildah buildah(dir_);
  auto container = buildah.must({"from", "--quiet", "scratch"}, "buildah from scratch");
  Result<Image> result = tl::unexpected(Error{});
  if (!container) {
    result = tl::unexpected(container.error());
  } else if (auto added = buildah.must({"add", *container, archive, "/"}, "adding " + path);
             !added) {
    result = tl::unexpected(added.error());
  } else if (auto configured =
                 buildah.must({"config", "--env",
                               "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "--workingdir", workdir.empty() ? "/" : workdir, *container},
                              "buildah config");
             !configured) {
    result = tl::unexpected(configured.error());
  } else if (auto committed =
                 buildah.must({"commit", "--quiet", *container, name}, "buildah commit");
             !committed) {
    result = tl::unexpected(committed.error());
  } else {
    std::vector<std::string> tag = {"tag", name};
    tag.insert(tag.end(), also.begin(), also.end());
    if (auto tagged = also.empty() ? Result<std::string>() : buildah.must(tag, "buildah tag");
        !tagged) {
      result = tl::unexpected(tagged.error());
    } else {
      Image image;
      image.source = fs::absolute(path).string();
      image.created = now_seconds();
      image.base = true;
      image.bytes = fs::file_size(archive, ec);
      (void)detail::read_config(buildah, name, image);
      result = image;
      for (const std::string& n : names) {  // a record each: list and prune see every name
        image.name = n;
        if (auto written = write_record(store / "bases" / base_record(n), image); !written) {
          result = tl::unexpected(written.error());
          break;
        }
      }
      if (result) result->name = name;
      forget_failures(store);
    }
  }
  if (container) (void)buildah.run({"rm", *container});
  if (!made.empty()) fs::remove(made, ec);
  return result;
}

Result<Image> Store::pull(const std::string& name, const Progress& progress) const {
  if (!detail::valid_reference(name))
    return tl::unexpected(Error{"'" + name + "' is not an image name"});
  const Buildah buildah(dir_);
  const fs::path store = dir_, record = store / "bases" / base_record(name);
  // One pull of a name at a time: every trial of a SWE-bench instance asks for its image at once.
  KeyLock lock(store / "locks" / ("pull-" + record.stem().string()));
  // Imported under this name, or pulled before.
  const std::string remote = docker_reference(name);
  auto id = detail::image_id(buildah, name);
  if (!id && remote != name) id = detail::image_id(buildah, remote);
  if (!id) {
    if (buildah.version().empty())
      return tl::unexpected(Error{"buildah cannot be run: scripts/setup.sh installs it"});
    const std::uint64_t keep_free = keep_free_default(dir_);
    if (auto room = room_for(dir_, keep_free, name); !room) return tl::unexpected(room.error());
    if (progress) progress("pulling " + remote);
    const auto started = std::chrono::steady_clock::now();
    // docker:// always: a name never picks another transport (a host folder, an archive).
    auto pulled = buildah.run({"pull", "--quiet", "docker://" + remote}, -1,
                              {.disk = dir_, .keep_free = keep_free});
    if (!pulled) return tl::unexpected(pulled.error());
    if (pulled->over_limit != detail::ToolLimit::none)
      return tl::unexpected(
          Error{"the pull of " + remote + " was stopped: " + pulled->over_limit_text});
    if (pulled->status != 0)
      return tl::unexpected(Error{"the image " + remote + " cannot be pulled here (" +
                                  detail::last_lines(pulled->err + pulled->out, 1) +
                                  "); `warren image import " + name + " DIR|TAR` stands one in"});
    if (progress) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      char line[512];
      std::snprintf(line, sizeof line, "pulled %s in %.1f s", remote.c_str(), seconds);
      progress(line);
    }
    id = detail::image_id(buildah, remote);
    if (!id) return tl::unexpected(id.error());
  }
  Image image;
  image.name = name;
  image.base = true;
  image.id = *id;
  auto layers = detail::image_layers(dir_, image.id);
  if (!layers) return tl::unexpected(Error{name + ": " + layers.error().message});
  image.layers = std::move(layers->folders);
  image.bytes = layers->bytes;
  if (auto read = detail::read_config(buildah, image.id, image); !read)
    return tl::unexpected(read.error());
  // Recorded once, so that `list` shows it and `prune --bases` removes it; an imported image of
  // the same name keeps its own record.
  if (auto known = read_record(record)) {
    image.source = known->source;
    image.created = known->created;
  } else {
    image.source = "docker://" + name;
    image.created = now_seconds();
    Image kept = image;
    kept.layers.clear();  // looked up again each time: the storage is the truth
    if (auto written = write_record(record, kept); !written) return tl::unexpected(written.error());
  }
  return image;
}

Result<std::vector<Image>> Store::list() const {
  std::vector<Image> built, bases;
  std::error_code ec;
  for (const char* sub : {"images", "bases"})
    for (const auto& entry : fs::directory_iterator(fs::path(dir_) / sub, ec))
      if (entry.path().extension() == ".json")
        if (auto image = read_record(entry.path())) (image->base ? bases : built).push_back(*image);
  if (ec) return tl::unexpected(Error{"cannot read the image store " + dir_ + ": " + ec.message()});
  auto newest_first = [](const Image& a, const Image& b) { return a.created > b.created; };
  std::sort(built.begin(), built.end(), newest_first);
  std::sort(bases.begin(), bases.end(), newest_first);
  built.insert(built.end(), bases.begin(), bases.end());
  return built;
}

bool Store::has_image(const std::string& name) const {
  return detail::image_id(Buildah(dir_), name).has_value();
}

Result<std::vector<Image>> Store::prune(bool bases) const {
  auto images = list();
  if (!images) return tl::unexpected(images.error());
  const Buildah buildah(dir_);
  std::vector<Image> removed;
  std::error_code ec;
  for (const Image& image : *images) {
    if (image.base && !bases) continue;
    KeyLock lock(fs::path(dir_) / "locks" / (image.base ? "base" : image.key));
    (void)buildah.run({"rmi", "--force", image.name});
    if (image.base) {
      fs::remove(fs::path(dir_) / "bases" / base_record(image.name), ec);
    } else {
      // The record first: from then on no one finds the image, whose layers go next.
      fs::remove(fs::path(dir_) / "images" / (image.key + ".json"), ec);
      fs::remove_all(fs::path(dir_) / "roots" / image.key, ec);  // a copy, in an older store
      fs::remove(fs::path(dir_) / "logs" / (image.key + ".log"), ec);
    }
    removed.push_back(image);
  }
  forget_failures(dir_);  // the next build of each tries again
  // Working containers left by a build that was killed hold their layers: gone first.
  if (bases) (void)buildah.run({"rm", "--all"});
  (void)buildah.run({"rmi", "--prune"});  // the intermediate layers no image uses any more
  return removed;
}

}  // namespace warren::image
