// A small root folder to import as a base image, made from this host's own programs: busybox for
// the utilities, and bash with the libraries it loads (Harbor's and Terminal-Bench's graders run
// bash). Tests cannot reach a public registry; this stands in for a base image, as
// `warren image import` lets a user's own root do.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace warren::testing {

inline bool make_mini_root(const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  fs::remove_all(root);
  for (const char* dir : {"bin", "etc", "tmp", "root"}) fs::create_directories(root / dir);
  fs::permissions(root / "tmp", fs::perms::all | fs::perms::sticky_bit);
  // busybox's applets as links; bash and every library ldd names, at their own paths. The root is
  // the script's argument (tests' temporary folders: no quotes in them).
  const fs::path script = root.string() + ".sh";
  {
    std::ofstream out(script);
    out << "set -e; R=\"$1\"; cp /bin/busybox \"$R/bin/\"\n"
           "for a in $(/bin/busybox --list); do [ -e \"$R/bin/$a\" ] || ln -s busybox "
           "\"$R/bin/$a\"; done\n"
           "rm -f \"$R/bin/bash\"; cp /bin/bash \"$R/bin/bash\"\n"
           "for lib in $(ldd /bin/bash | grep -o '/[^ ]*'); do\n"
           "  mkdir -p \"$R$(dirname \"$lib\")\"; cp -L \"$lib\" \"$R$lib\"\n"
           "done\n"
           "echo 'root:x:0:0:root:/root:/bin/sh' > \"$R/etc/passwd\"\n";
  }
  const int status =
      std::system(("bash '" + script.string() + "' '" + root.string() + "'").c_str());
  fs::remove(script);
  return status == 0;
}

}  // namespace warren::testing
