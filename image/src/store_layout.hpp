// Inside image/: the store's folders, the builder, and the key.
//
// A store folder holds:
//   storage/ run/        buildah's storage and run folders (--root, --runroot): layers, images
//   roots/KEY/           a built image unpacked, the lower layer of the sandboxes that use it
//   images/KEY.json      its record (image.hpp's Image); written last, so a record means a root
//   bases/NAME-HASH.json the record of an imported base image
//   logs/KEY.log         the build's output, kept whether it succeeded or not
//   locks/KEY            held while KEY is built: a second builder waits, then finds the record
//   tmp/                 roots being unpacked, archives being imported
#pragma once

#include <string>
#include <vector>

#include "tool.hpp"
#include "warren/image/image.hpp"

namespace warren::image::detail {

// The hex SHA-256 of what a build of `dockerfile` (relative to `context`) depends on.
Result<std::string> context_key(const std::string& context, const std::string& dockerfile);

// buildah, pointed at one store's storage.
class Buildah {
 public:
  explicit Buildah(const std::string& store_dir);
  // `buildah ARGS`; its output captured, or appended to `log_fd`.
  Result<ToolRun> run(const std::vector<std::string>& args, int log_fd = -1) const;
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

// The image `name` of the builder's storage unpacked into `root` (which must not exist), with
// owners, modes, links and attributes as they are in the image.
Result<void> unpack_image(const Buildah& buildah, const std::string& name, const std::string& root);

// The configuration of the image `name`: WORKDIR, ENV and USER into `image`.
Result<void> read_config(const Buildah& buildah, const std::string& name, Image& image);

// Whether buildah `version` ("1.28.2") is at least major.minor.
bool at_least(const std::string& version, int major, int minor);

}  // namespace warren::image::detail
