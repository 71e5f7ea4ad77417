// buildah, the daemonless builder, run as a program against the store's own storage.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "store_layout.hpp"

namespace warren::image::detail {

namespace {

namespace fs = std::filesystem;

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

Buildah::Buildah(const std::string& store_dir)
    : prefix_{"buildah",          "--root", store_dir + "/storage", "--runroot", store_dir + "/run",
              "--storage-driver", "overlay"} {}

Result<ToolRun> Buildah::run(const std::vector<std::string>& args, int log_fd,
                             ToolLimits limits) const {
  std::vector<std::string> argv;
  // As root, buildah is the first process of a PID namespace of its own (unshare --kill-child:
  // SIGKILL when unshare dies, which a dying Warren's SIGKILL makes it do). When it ends,
  // however it ends, the kernel kills every process left in that namespace, the RUN step's
  // container among them: buildah's own SIGTERM handling left a RUN step's process running in
  // 1 build of 6 killed under load (ImageCli.AKilledEvalLeavesNoBuildBehind). --mount-proc:
  // runc reads its children in /proc, which must be that namespace's; the mount namespace it
  // takes also drops whatever a killed build left mounted. Nothing here keeps a buildah mount
  // past the command that made it (layers are read from their folders on disk).
  // unshare ignores SIGTERM while it waits for its child: it is sent SIGKILL.
  if (geteuid() == 0) argv = {"unshare", "--pid", "--fork", "--kill-child", "--mount-proc"};
  argv.insert(argv.end(), prefix_.begin(), prefix_.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return run_tool(argv, log_fd, geteuid() == 0 ? SIGKILL : SIGTERM, limits);
}

Result<std::string> Buildah::must(const std::vector<std::string>& args,
                                  const std::string& what) const {
  auto ran = run(args);
  if (!ran) return tl::unexpected(ran.error());
  if (ran->status != 0)
    return tl::unexpected(Error{what + " failed: " + last_lines(ran->err + ran->out, 1)});
  return trimmed(ran->out);
}

std::vector<std::string> Buildah::runtime_args() const {
  const std::string runc = on_path("runc");
  if (runc.empty()) return {};
  return {"--runtime", runc};
}

std::string Buildah::version() const {
  auto ran = run_tool({"buildah", "--version"});
  if (!ran || ran->status != 0) return "";
  const std::string& out = ran->out;  // "buildah version 1.28.2 (image-spec ...)"
  const std::size_t at = out.find("version ");
  if (at == std::string::npos) return "";
  const std::size_t begin = at + 8;
  return out.substr(begin, out.find(' ', begin) - begin);
}

bool at_least(const std::string& version, int major, int minor) {
  int have_major = 0, have_minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &have_major, &have_minor) != 2) return false;
  return have_major > major || (have_major == major && have_minor >= minor);
}

Result<std::string> image_id(const Buildah& buildah, const std::string& name) {
  auto id = buildah.must({"inspect", "--type", "image", "--format", "{{.FromImageID}}", name},
                         "buildah inspect " + name);
  if (id && id->empty()) return tl::unexpected(Error{"buildah inspect " + name + " gave no id"});
  return id;
}

Result<void> read_config(const Buildah& buildah, const std::string& name, Image& image) {
  auto inspected = buildah.must({"inspect", "--type", "image", name}, "buildah inspect " + name);
  if (!inspected) return tl::unexpected(inspected.error());
  const auto json = nlohmann::json::parse(*inspected, nullptr, false);
  const nlohmann::json* config =
      json.is_object() && json.contains("OCIv1") ? &json["OCIv1"]["config"] : nullptr;
  if (!config || !config->is_object())
    return tl::unexpected(Error{"buildah inspect " + name + " gave no image configuration"});
  image.workdir = config->value("WorkingDir", "");
  image.user = config->value("User", "");
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    if (config->contains(key) && (*config)[key].is_array())
      for (const auto& s : (*config)[key])
        if (s.is_string()) out.push_back(s.get<std::string>());
    return out;
  };
  image.env = strings("Env");
  image.entrypoint = strings("Entrypoint");
  image.cmd = strings("Cmd");
  return {};
}

}  // namespace warren::image::detail
