// warren/image: task environments as images, without a daemon. A task's Dockerfile is built by
// buildah, its base image pulled by buildah from a registry or stood in for by one imported
// here. A built image's layers, as the builder keeps them, are the read-only lower layers of every
// sandbox that runs on it (sandbox::overlay_workspace stacks them): no image is ever copied. Builds
// are cached by the content of the Dockerfile and its build context, shared by every trial,
// attempt and run. docs/images.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

namespace warren::image {

struct Error {
  std::string message;  // one line a user can act on
};

template <class T>
using Result = tl::expected<T, Error>;

struct Image {
  // Built: the hex SHA-256 of the Dockerfile's path and the build context's content. Imported:
  // empty (a base image is known by its name).
  std::string key;
  std::string name;  // in the builder's storage: warren/build-<key's first 16>, or the import's
  // The Dockerfile it was built from, the folder or archive imported, or docker://NAME pulled.
  std::string source;
  std::string id;  // the builder's id of the image
  // Built images: the folders of its layers, top first, as overlayfs stacks lower layers (their
  // whiteouts are overlayfs's). Found in the builder's storage each time the image is asked for.
  std::vector<std::string> layers;
  std::string workdir;           // the image's WORKDIR; "" when it sets none
  std::vector<std::string> env;  // its ENV, KEY=VALUE
  std::string user;              // its USER; "" for root
  // Its ENTRYPOINT and CMD (exec form): what a container of it runs when told nothing else.
  std::vector<std::string> entrypoint, cmd;
  // Built: its layers' sizes together (layers shared with other images, such as its base's,
  // are counted in each). Imported: the archive's size.
  std::uint64_t bytes = 0;
  std::int64_t created = 0;  // unix seconds
  bool base = false;         // imported to stand in for a base image
};

struct BuildRequest {
  std::string context;     // the build context: a folder whose content is untrusted data
  std::string dockerfile;  // relative to `context`
  std::string label;       // names the build in progress lines and errors (a task's name)
  // A build of this key that failed before is remembered (failed/KEY) and its error given again
  // without building, unless this is set (`warren image build` sets it; `prune` forgets them).
  bool retry_failed = false;
  // A Dockerfile is its task author's: its RUN steps could run forever or print without end. A
  // build past either limit is killed and fails, saying which (0: no limit).
  std::chrono::seconds timeout{3600};
  std::uint64_t log_bytes = std::uint64_t{64} << 20;
  // Its RUN steps could also fill the store's disk: the build is killed, its working container
  // removed, when the store's filesystem has less than this free (nullopt: keep_free_default).
  std::optional<std::uint64_t> keep_free;
};

// The bytes a build or a pull keeps free on the disk of the store `store_dir`, unless told: 5%
// of the disk, at most 4 GiB.
std::uint64_t keep_free_default(const std::string& store_dir);

using Progress = std::function<void(const std::string& line)>;

// Where images live: $WARREN_IMAGES, else $XDG_CACHE_HOME/warren/images, else
// ~/.cache/warren/images.
std::string default_store_dir();

// The builder's storage, the images' records and build logs, all under one folder
// (mode 0700: an image holds set-id programs and whatever its build put in it). Safe to use from
// several threads and processes at once: a build of one key happens once, the others wait for it.
class Store {
 public:
  static Result<Store> open(std::string dir = "");

  // The image `request` describes: the cached one when its key is known, else built now (its
  // log kept in logs/, and its last lines in the error when the build fails).
  Result<Image> build(const BuildRequest& request, const Progress& progress = {}) const;

  // A base image made from a root folder or a tar archive of one, under `name` (as a Dockerfile's
  // FROM names it): a stand-in for an image the registries cannot give here. `workdir`: the
  // image's WORKDIR, as the image it stands in for has it ("" for none). `also`: more names for
  // the same image (one root standing in for several bases), which share its layer.
  Result<Image> import(const std::string& name, const std::string& path,
                       const std::string& workdir = "",
                       const std::vector<std::string>& also = {}) const;

  // The image `name` as it is, with no build (SWE-bench's per-instance images): pulled by the
  // builder from its registry on first use, then found in the storage. A name the registries
  // cannot give is an Error naming it, with the remedy (`warren image import`).
  Result<Image> pull(const std::string& name, const Progress& progress = {}) const;

  // Whether the builder has the image `name` here, imported or pulled before (nothing is pulled).
  bool has_image(const std::string& name) const;

  // Built images, newest first, then imported ones.
  Result<std::vector<Image>> list() const;

  // Removes every built image (and with `bases`, every imported one): their records, logs and
  // the builder's layers. Returns what was removed.
  Result<std::vector<Image>> prune(bool bases) const;

  // The key a build of `request` would have, without building.
  Result<std::string> key_of(const BuildRequest& request) const;

  const std::string& dir() const { return dir_; }

 private:
  explicit Store(std::string dir) : dir_(std::move(dir)) {}
  std::optional<Image> cached(const std::string& key) const;
  std::string dir_;
};

}  // namespace warren::image
