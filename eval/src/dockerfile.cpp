// A task's Dockerfile, read for what it asks of the environment: WORKDIR, ENV and COPY/ADD of
// local files into the workdir are honoured without a build; whatever changes the image itself
// (RUN, USER, files put outside the workdir, remote ADD, globs, other stages) needs an image build
// (images.cpp).
#include <filesystem>
#include <sstream>

#include "task_files.hpp"
#include "warren/eval/eval.hpp"

namespace warren::eval {

namespace {

namespace fs = std::filesystem;

// The Dockerfile's instructions, one string each: comments dropped, continuation lines joined.
std::vector<std::string> instructions(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    if (!line.empty() && line.back() == '\\') {
      current += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.push_back(current + line);
    current.clear();
  }
  if (!current.empty()) out.push_back(current);
  return out;
}

// Words of an instruction's arguments: the JSON array form, or split on blanks.
std::vector<std::string> words(const std::string& args) {
  std::vector<std::string> out;
  const auto first = args.find_first_not_of(" \t");
  if (first != std::string::npos && args[first] == '[') {
    auto json = toolcall::parse_json(args.substr(first));
    if (json && json->is_array()) {
      for (const Json& w : *json)
        if (w.is_string()) out.push_back(w.get<std::string>());
      return out;
    }
  }
  std::istringstream in(args);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// ENV KEY=VALUE ... (values may be quoted), or the old ENV KEY VALUE.
std::vector<std::string> env_pairs(const std::string& args) {
  std::vector<std::string> out;
  const auto first = args.find_first_not_of(" \t");
  if (first == std::string::npos) return out;
  const std::string rest = args.substr(first);
  const auto space = rest.find_first_of(" \t"), equals = rest.find('=');
  if (equals == std::string::npos || (space != std::string::npos && space < equals)) {
    const std::string value =
        space == std::string::npos ? "" : rest.substr(rest.find_first_not_of(" \t", space));
    out.push_back(rest.substr(0, space) + "=" + value);
    return out;
  }
  std::string pair;
  char quote = 0;
  for (char c : rest) {
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        pair += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == ' ' || c == '\t') {
      if (!pair.empty()) out.push_back(pair);
      pair.clear();
    } else {
      pair += c;
    }
  }
  if (!pair.empty()) out.push_back(pair);
  return out;
}

std::string upper(std::string word) {
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word;
}

// Where `destination` (absolute, or relative to `workdir`) lies relative to `workdir`; nullopt
// when it is outside it.
std::optional<std::string> inside_workdir(const std::string& workdir,
                                          const std::string& destination) {
  const fs::path dest =
      destination.starts_with('/') ? fs::path(destination) : fs::path(workdir) / destination;
  const fs::path relative =
      dest.lexically_normal().lexically_relative(fs::path(workdir).lexically_normal());
  std::string text = relative.string();
  if (text.empty() || text.starts_with("..")) return std::nullopt;
  while (text.ends_with('/')) text.pop_back();
  return text == "." ? "" : text;
}

// A COPY source as a path relative to the task's folder (context/source, normalised: "." for the
// folder itself).
std::string in_context(const std::string& context, const std::string& source) {
  std::string joined = (fs::path(context) / source).lexically_normal().string();
  while (joined.size() > 1 && joined.ends_with('/')) joined.pop_back();
  return joined.empty() ? "." : joined;
}

}  // namespace

Result<Environment> read_dockerfile(const std::string& task_dir, const std::string& file,
                                    const std::string& context) {
  auto folder = detail::TaskFolder::open(task_dir);
  if (!folder) return tl::unexpected(folder.error());
  auto text = folder->read(file, "the Dockerfile");
  if (!text) return tl::unexpected(text.error());
  Environment e;
  e.context = context;
  e.dockerfile = file;
  for (const std::string& instruction : instructions(*text)) {
    const auto first = instruction.find_first_not_of(" \t");
    const auto end = instruction.find_first_of(" \t", first);
    const std::string keyword = upper(instruction.substr(first, end - first));
    const std::string args = end == std::string::npos ? "" : instruction.substr(end + 1);
    if (keyword == "FROM") {
      for (const std::string& word : words(args))  // the first that is no flag (--platform)
        if (!word.starts_with("--")) {
          e.base_image = word;
          break;
        }
    } else if (keyword == "WORKDIR") {
      const auto w = words(args);
      if (w.empty()) return tl::unexpected(Error{file + ": WORKDIR without a path"});
      e.workdir = (w[0].starts_with('/') ? fs::path(w[0]) : fs::path(e.workdir) / w[0])
                      .lexically_normal()
                      .string();
    } else if (keyword == "ENV") {
      for (std::string& pair : env_pairs(args)) e.env.push_back(std::move(pair));
    } else if (keyword == "COPY" || keyword == "ADD") {
      std::vector<std::string> w;
      bool from_stage = false;
      for (std::string& word : words(args)) {
        from_stage = from_stage || word.starts_with("--from");
        if (!word.starts_with("--"))
          w.push_back(std::move(word));  // --chown, --chmod: ids are the sandbox's
      }
      if (w.size() < 2)
        return tl::unexpected(Error{file + ": " + keyword + " needs a source and a destination"});
      const std::string destination = w.back();
      const auto relative = inside_workdir(e.workdir, destination);
      for (std::size_t i = 0; i + 1 < w.size(); ++i) {
        // A glob, another stage's files or a heredoc: what they name only the builder knows.
        if (w[i].find("://") != std::string::npos || !relative || from_stage ||
            w[i].find_first_of("*?[") != std::string::npos || w[i].starts_with("<<")) {
          e.needs_image.push_back(instruction);
          break;
        }
        // The build context is the task's data: nothing outside it is ever read.
        if (!detail::plainly_beneath(w[i]))
          return tl::unexpected(Error{file + ": " + keyword + " source " + w[i] +
                                      " is outside the build context (absolute paths and .. "
                                      "are refused)"});
        const std::string source = in_context(context, w[i]);
        const detail::TaskEntry kind = folder->entry(source);
        if (kind == detail::TaskEntry::Missing)
          return tl::unexpected(
              Error{file + ": " + keyword + " source " + w[i] + " is not in the build context"});
        if (kind == detail::TaskEntry::Other)
          return tl::unexpected(Error{file + ": " + keyword + " source " + w[i] +
                                      " is not a file or directory beneath the build context "
                                      "(a link that leads out of it is refused)"});
        const bool directory = kind == detail::TaskEntry::Directory;
        // COPY dir/ dest copies the directory's contents; COPY file dest/ keeps the file's name.
        std::string into = *relative;
        const bool into_directory = destination.ends_with('/') || relative->empty() || w.size() > 2;
        const std::string base_name = fs::path(source).filename().string();
        if (!directory && into_directory) into = (fs::path(into) / base_name).string();
        const bool archive = keyword == "ADD" && !directory &&
                             (base_name.ends_with(".tar") || base_name.ends_with(".tar.gz") ||
                              base_name.ends_with(".tgz") || base_name.ends_with(".tar.xz") ||
                              base_name.ends_with(".tar.bz2"));
        if (archive) into = *relative;  // unpacked into the destination directory
        e.copies.push_back({source, into, archive});
      }
    } else if (keyword == "RUN" || keyword == "USER" || keyword == "VOLUME" ||
               keyword == "ONBUILD") {
      e.needs_image.push_back(instruction);
    }
    // CMD, ENTRYPOINT, EXPOSE, LABEL, ARG, SHELL, HEALTHCHECK, STOPSIGNAL, MAINTAINER: they do
    // not change the files a task sees.
  }
  return e;
}

}  // namespace warren::eval
