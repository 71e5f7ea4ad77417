// What image/ reads of a Dockerfile: the images it names, checked before buildah sees it.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "store_layout.hpp"

namespace warren::image::detail {

namespace {

// The Dockerfile's instructions: continuation lines joined, comments and blank lines left out.
// "" and the reason when it has a parser directive that changes the escape character (the
// instructions would then not be what this reads).
std::vector<std::string> instructions_of(const std::string& dockerfile, std::string& problem) {
  std::vector<std::string> out;
  std::istringstream lines(dockerfile);
  std::string joined;
  for (std::string line; std::getline(lines, line);) {
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    if (line[first] == '#') {
      std::string directive = line.substr(first + 1);
      directive.erase(std::remove_if(directive.begin(), directive.end(), ::isspace),
                      directive.end());
      std::transform(directive.begin(), directive.end(), directive.begin(), ::tolower);
      if (directive.starts_with("escape=")) problem = "a '# escape=' parser directive";
      continue;
    }
    joined += line;
    if (!joined.empty() && joined.back() == '\\') {
      joined.pop_back();
      continue;
    }
    out.push_back(std::move(joined));
    joined.clear();
  }
  if (!joined.empty()) out.push_back(std::move(joined));
  return out;
}

}  // namespace

bool valid_reference(const std::string& name) {
  if (name.empty() || name.size() > 255 || name.front() == '-' || name.front() == '/' ||
      name.back() == '/' || name.find("//") != std::string::npos)
    return false;
  if (!std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || std::strchr("._:/@-", c);
      }))
    return false;
  const std::size_t at = name.find('@');
  if (at != std::string::npos && name.compare(at, 8, "@sha256:") != 0) return false;
  const std::string path = name.substr(0, at);
  const std::size_t slash = path.find('/');
  const std::string first = path.substr(0, slash == std::string::npos ? path.find(':') : slash);
  static const std::set<std::string> kTransports = {
      "containers-storage", "dir",    "docker", "docker-archive", "docker-daemon", "oci",
      "oci-archive",        "ostree", "sif",    "tarball"};
  if (kTransports.contains(first)) return false;
  // A registry's port is digits: "dir:/x" and "oci:x/y" are not a host and a port.
  if (const std::size_t colon = first.find(':');
      slash != std::string::npos && colon != std::string::npos)
    return colon + 1 < first.size() &&
           first.find_first_not_of("0123456789", colon + 1) == std::string::npos;
  return true;
}

// The images a Dockerfile's FROM lines name (stage names aside), for errors about pulling them.
std::vector<std::string> base_images(const std::string& dockerfile) {
  std::vector<std::string> names, stages;
  std::istringstream lines(dockerfile);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string word, image, as, stage;
    if (!(words >> word) || (word != "FROM" && word != "from")) continue;
    while (words >> image && image.starts_with("--")) {
    }
    if (words >> as >> stage) stages.push_back(stage);
    if (!image.empty() && std::find(stages.begin(), stages.end(), image) == stages.end())
      names.push_back(image);
  }
  return names;
}

// The first image a Dockerfile names (FROM, COPY/ADD --from=, RUN --mount=...,from=) that is not
// an earlier stage of its own and not a name a registry serves, with what it is; "" when none.
// buildah resolves its other transports there too (FROM docker-archive:/root/x.tar,
// oci:/var/lib/..., containers-storage:another-task's-image): a task would read the host's files
// or another task's image as root. A task's images are data, as Store::pull takes them.
std::string unsafe_image_name(const std::string& dockerfile) {
  std::string problem;
  const std::vector<std::string> lines = instructions_of(dockerfile, problem);
  if (!problem.empty()) return problem;
  std::vector<std::string> stages;
  auto named = [&](const std::string& image, const std::string& how) -> std::string {
    std::string lower = image;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    const bool stage = std::find(stages.begin(), stages.end(), lower) != stages.end() ||
                       (!image.empty() && std::all_of(image.begin(), image.end(), ::isdigit));
    if (stage || valid_reference(image)) return "";
    return how + " '" + image +
           "', which is not an image name (a registry's name, with no '$', '/' "
           "first or transport)";
  };
  for (const std::string& line : lines) {
    std::istringstream words(line);
    std::string keyword, word;
    words >> keyword;
    std::transform(keyword.begin(), keyword.end(), keyword.begin(), ::toupper);
    if (keyword == "FROM") {
      std::string image, as, stage;
      while (words >> image && image.starts_with("--")) {
      }
      if (auto bad = named(image, "FROM"); !bad.empty()) return bad;
      if (words >> as >> stage) {
        std::transform(stage.begin(), stage.end(), stage.begin(), ::tolower);
        stages.push_back(stage);
      }
    } else if (keyword == "COPY" || keyword == "ADD" || keyword == "RUN") {
      while (words >> word && word.starts_with("--")) {
        if (word.starts_with("--from=")) {
          if (auto bad = named(word.substr(7), keyword + " --from"); !bad.empty()) return bad;
        } else if (word.starts_with("--mount=")) {
          std::istringstream options(word.substr(8));
          for (std::string option; std::getline(options, option, ',');)
            if (option.starts_with("from="))
              if (auto bad = named(option.substr(5), "RUN --mount from="); !bad.empty()) return bad;
        }
      }
    }
  }
  return "";
}

// Heredocs (RUN <<EOF) came with buildah 1.33: an older one would run the words as a command.
bool uses_heredoc(const std::string& dockerfile) {
  std::istringstream lines(dockerfile);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;
    const std::string rest = line.substr(first);
    if ((rest.starts_with("RUN ") || rest.starts_with("COPY ")) &&
        rest.find("<<") != std::string::npos)
      return true;
  }
  return false;
}

}  // namespace warren::image::detail
