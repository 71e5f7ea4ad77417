// Inside image/: the store's folders, the builder, and the key.
//
// A store folder holds:
//   storage/ run/        buildah's storage and run folders (--root, --runroot): layers, images;
//                        a sandbox stacks an image's layers from here (layers.cpp)
//   images/KEY.json      a built image's record (image.hpp's Image), written once buildah has
//                        committed the image: a record whose image has gone from the storage is
//                        built again
//   bases/NAME-HASH.json the record of an imported base image
//   logs/KEY.log         the build's output, kept whether it succeeded or not
//   locks/KEY            held while KEY is built: a second builder waits, then finds the record
//   tmp/                 archives being imported
// Stores made before images were stacked from their layers also hold roots/KEY/, a copy of each
// image: build() removes one as it meets its record.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tool.hpp"
#include "warren/image/image.hpp"

namespace warren::image::detail {

// The hex SHA-256 of what a build of `dockerfile` (relative to `context`) depends on: the
// context's content, and `bases` (each base image's name and id).
Result<std::string> context_key(const std::string& context, const std::string& dockerfile,
                                const std::vector<std::string>& bases);

// buildah, pointed at one store's storage.
class Buildah {
 public:
  explicit Buildah(const std::string& store_dir);
  // `buildah ARGS`; its output captured, or appended to `log_fd`; killed past `limits`.
  Result<ToolRun> run(const std::vector<std::string>& args, int log_fd = -1,
                      ToolLimits limits = {}) const;
  // `buildah ARGS`, which must succeed: its standard output, trimmed, or an Error that says
  // `what` failed and buildah's last line.
  Result<std::string> must(const std::vector<std::string>& args, const std::string& what) const;
  // `buildah bud` arguments that choose the OCI runtime: runc where installed (crun refuses
  // cgroup v1 hybrid hosts).
  std::vector<std::string> runtime_args() const;
  // buildah's version as "1.28.2", or "" when it cannot be run.
  std::string version() const;

 private:
  std::vector<std::string> prefix_;
};

// The id of the image `name` in the builder's storage.
Result<std::string> image_id(const Buildah& buildah, const std::string& name);

struct ImageLayers {
  std::vector<std::string> folders;  // the layers' diff folders, top first
  std::uint64_t bytes = 0;           // their sizes together
};

// The layers of the image `id` in the storage of the store `store_dir` (layers.cpp).
Result<ImageLayers> image_layers(const std::string& store_dir, const std::string& id);

// The working containers whose roots are mounted in the processes of `pid`'s tree (a build's):
// their ids in the storage of the store `store_dir` (layers.cpp).
std::vector<std::string> mounted_containers(pid_t pid, const std::string& store_dir);

// The configuration of the image `name`: WORKDIR, ENV, USER, ENTRYPOINT and CMD into `image`.
Result<void> read_config(const Buildah& buildah, const std::string& name, Image& image);

// Whether buildah `version` ("1.28.2") is at least major.minor.
bool at_least(const std::string& version, int major, int minor);

// What image/ reads of a Dockerfile (dockerfile.cpp), and which image names it takes.

// Whether `name` is an image reference as Docker writes one ([HOST[:PORT]/]PATH[:TAG][@DIGEST]),
// and not a name of another of the builder's transports (dir:/..., oci-archive:/...,
// containers-storage:...), which would read host files or another task's image. A task names
// its images (a compose file's `image:`, a SWE-bench instance's `image`, a Dockerfile's FROM):
// they are data.
bool valid_reference(const std::string& name);
// The images a Dockerfile's FROM lines name (stage names aside), for errors about pulling them.
std::vector<std::string> base_images(const std::string& dockerfile);
// The first image a Dockerfile names (FROM, COPY/ADD --from=, RUN --mount=...,from=) that is not
// an earlier stage of its own and not a name valid_reference takes, with what names it; "" when
// none.
std::string unsafe_image_name(const std::string& dockerfile);
// Whether it has a heredoc (RUN <<EOF), which came with buildah 1.33.
bool uses_heredoc(const std::string& dockerfile);

}  // namespace warren::image::detail
