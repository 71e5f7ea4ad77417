// An image's layers, read from the builder's storage: what lets a sandbox stack them as its root
// (sandbox::overlay_workspace) instead of running on an unpacked copy of each image.
//
// buildah keeps images in containers/storage's overlay driver (containers-storage.conf(5)):
//   storage/overlay-images/images.json  each image: "id", "names", "layer" (its top layer's id)
//   storage/overlay-layers/layers.json  each layer: "id", "parent" (none for a bottom layer),
//                                       "diff-size" (bytes of the unpacked diff)
//   storage/overlay-containers/containers.json  each working container: "id", "layer" (its own)
//   storage/overlay/ID/diff             a layer's files, as overlayfs takes a lower layer:
//   whiteouts
//                                       are 0:0 character devices and opaque folders carry
//                                       trusted.overlay.opaque, as the driver writes them for the
//                                       kernel's overlay, which mounts these same folders itself
// Both JSON files are replaced whole (written beside, then renamed) by the storage library, so a
// read sees one version or the other, even while another build writes them.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "store_layout.hpp"

namespace warren::image::detail {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json read_json(const fs::path& file) {
  std::ifstream in(file);
  return json::parse(in, nullptr, false);
}

struct Layer {
  std::string parent;
  std::uint64_t bytes = 0;
};

}  // namespace

Result<ImageLayers> image_layers(const std::string& store_dir, const std::string& id) {
  const fs::path storage = fs::path(store_dir) / "storage";
  const json images = read_json(storage / "overlay-images" / "images.json");
  const json layers = read_json(storage / "overlay-layers" / "layers.json");
  if (!images.is_array() || !layers.is_array())
    return tl::unexpected(Error{"the builder's storage in " + storage.string() +
                                " cannot be read (no overlay-images/images.json or "
                                "overlay-layers/layers.json)"});
  std::string top;
  for (const json& image : images)
    if (image.is_object() && image.value("id", "") == id) top = image.value("layer", "");
  if (top.empty())
    return tl::unexpected(
        Error{"the image " + id.substr(0, 12) + " is not in " + storage.string()});
  std::map<std::string, Layer> known;
  for (const json& layer : layers)
    if (layer.is_object())
      known[layer.value("id", "")] = {layer.value("parent", ""),
                                      layer.value("diff-size", std::uint64_t{0})};
  ImageLayers found;
  // An image has a few dozen layers at most; a cycle would be a damaged file, not an image.
  for (std::string at = top; !at.empty(); at = known[at].parent) {
    const auto layer = known.find(at);
    if (layer == known.end() || found.folders.size() > 500)
      return tl::unexpected(Error{"the layers of the image " + id.substr(0, 12) + " in " +
                                  storage.string() + " are damaged (layer " + at.substr(0, 12) +
                                  ")"});
    const fs::path diff = storage / "overlay" / at / "diff";
    struct stat st {};
    if (stat(diff.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return tl::unexpected(Error{"the layer " + at.substr(0, 12) + " of the image " +
                                  id.substr(0, 12) + " is missing from " + storage.string()});
    found.folders.push_back(diff.string());
    found.bytes += layer->second.bytes;
  }
  return found;
}

namespace {

// `pid` and every process under it.
std::vector<std::string> process_tree(pid_t pid) {
  std::vector<std::string> tree = {std::to_string(pid)};
  for (std::size_t at = 0; at < tree.size() && tree.size() < 4096; ++at) {
    std::error_code ec;
    for (const auto& task : fs::directory_iterator("/proc/" + tree[at] + "/task", ec)) {
      std::ifstream children(task.path() / "children");
      for (std::string child; children >> child;) tree.push_back(child);
    }
  }
  return tree;
}

}  // namespace

std::vector<std::string> mounted_containers(pid_t pid, const std::string& store_dir) {
  // A working container's root is an overlay whose upper folder is its own layer's diff; it is
  // mounted in the build's mount namespace, so only the build's processes show it.
  const std::string layers = (fs::path(store_dir) / "storage" / "overlay").string() + "/";
  std::set<std::string> mounted;
  for (const std::string& process : process_tree(pid)) {
    std::ifstream mounts("/proc/" + process + "/mountinfo");
    for (std::string line; std::getline(mounts, line);) {
      const std::size_t upper = line.find("upperdir=" + layers);
      if (upper == std::string::npos) continue;
      const std::size_t begin = upper + 9 + layers.size();
      mounted.insert(line.substr(begin, line.find('/', begin) - begin));
    }
  }
  std::vector<std::string> found;
  const json containers =
      read_json(fs::path(store_dir) / "storage" / "overlay-containers" / "containers.json");
  if (containers.is_array())
    for (const json& container : containers)
      if (container.is_object() && mounted.contains(container.value("layer", "")))
        found.push_back(container.value("id", ""));
  return found;
}

}  // namespace warren::image::detail
