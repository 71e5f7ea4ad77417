// A small root folder to import as a base image, made from this host's own programs: busybox for
// the utilities, and bash with the libraries it loads (Harbor's and Terminal-Bench's graders run
// bash). Tests cannot reach a public registry; this stands in for a base image, as
// `warren image import` lets a user's own root do.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace warren::testing {

// `text` into `file`, its folders made.
inline void write(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// Runs the bash script `text` with `args` (tests' temporary folders: no quotes in them), from a
// file beside `root`. Whether it succeeded.
inline bool run_root_script(const std::filesystem::path& root, const std::string& text,
                            const std::vector<std::string>& args) {
  const std::filesystem::path script = root.string() + ".sh";
  write(script, text);
  std::string command = "bash '";  // appended: GCC 12 warns falsely on literal + string chains
  command += script.string();
  command += '\'';
  for (const std::string& a : args) {
    command += " '";
    command += a;
    command += '\'';
  }
  const int status = std::system(command.c_str());
  std::filesystem::remove(script);
  return status == 0;
}

inline bool make_mini_root(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  fs::remove_all(root);
  for (const char* dir : {"bin", "etc", "tmp", "root"}) fs::create_directories(root / dir);
  fs::permissions(root / "tmp", fs::perms::all | fs::perms::sticky_bit);
  // busybox's applets as links; bash and every library ldd names, at their own paths.
  return run_root_script(
      root,
      "set -e; R=\"$1\"; cp /bin/busybox \"$R/bin/\"\n"
      "for a in $(/bin/busybox --list); do [ -e \"$R/bin/$a\" ] || ln -s busybox "
      "\"$R/bin/$a\"; done\n"
      "rm -f \"$R/bin/bash\"; cp /bin/bash \"$R/bin/bash\"\n"
      "for lib in $(ldd /bin/bash | grep -o '/[^ ]*'); do\n"
      "  mkdir -p \"$R$(dirname \"$lib\")\"; cp -L \"$lib\" \"$R$lib\"\n"
      "done\n"
      "echo 'root:x:0:0:root:/root:/bin/sh' > \"$R/etc/passwd\"\n",
      {root.string()});
}

// The shape of a SWE-bench instance image on top of the mini root: git, Python (its standard
// library), conda's layout (/opt/miniconda3/bin/activate defining `conda activate`, and the
// testbed environment, the only place a `python` command is found), and `repo` copied to
// /testbed. From this host's own programs: Debian 12's python3.11.
inline bool make_swe_root(const std::filesystem::path& root, const std::filesystem::path& repo) {
  if (!make_mini_root(root)) return false;
  return run_root_script(
      root,
      "set -e; R=\"$1\"; REPO=\"$2\"\n"
      "py=$(readlink -f /usr/bin/python3); lib=/usr/lib/$(basename \"$py\")\n"
      "for bin in /usr/bin/git \"$py\"; do\n"
      "  mkdir -p \"$R/usr/bin\"; cp \"$bin\" \"$R/usr/bin/\"\n"
      "  for l in $(ldd \"$bin\" | grep -o '/[^ ]*'); do\n"
      "    mkdir -p \"$R$(dirname \"$l\")\"; cp -L \"$l\" \"$R$l\"\n"
      "  done\n"
      "done\n"
      "tar -C / --exclude=test --exclude=__pycache__ --exclude=idlelib --exclude=tkinter "
      "--exclude=ensurepip --exclude=lib2to3 --exclude=turtledemo --exclude='config-*' "
      "-cf - \"${lib#/}\" | tar -C \"$R\" -xf -\n"
      "mkdir -p \"$R/opt/miniconda3/bin\" \"$R/opt/miniconda3/envs/testbed/bin\"\n"
      "ln -s \"$py\" \"$R/opt/miniconda3/envs/testbed/bin/python\"\n"
      "cat > \"$R/opt/miniconda3/bin/activate\" <<'EOF'\n"
      "conda() {\n"
      "  [ \"$1\" = activate ] || return 1\n"
      "  [ -d \"/opt/miniconda3/envs/$2\" ] || return 1\n"
      "  export PATH=\"/opt/miniconda3/envs/$2/bin:$PATH\" CONDA_DEFAULT_ENV=\"$2\"\n"
      "}\n"
      "EOF\n"
      "ln -s /bin/busybox \"$R/usr/bin/env\"\n"
      "cp -a \"$REPO\" \"$R/testbed\"\n",
      {root.string(), repo.string()});
}

}  // namespace warren::testing
