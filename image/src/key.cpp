// An image's key: what a build depends on, hashed. The build context is untrusted data, walked by
// descriptor without following links (a link is hashed by its text, as buildah copies it), and
// only regular files are opened, without blocking, so a fifo or a device in a task folder can
// neither stall the harness nor be read.
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "store_layout.hpp"

namespace warren::image::detail {

namespace {

// Bumped when what goes into a key, or how an image is unpacked, changes: older entries are then
// simply never found again (`warren image prune` removes them).
constexpr const char* kKeyVersion = "warren-image-3\n";

class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr);
  }
  void add(const std::string& text) {
    const std::string size = std::to_string(text.size()) + ":";  // no two inputs run together
    EVP_DigestUpdate(ctx_.get(), size.data(), size.size());
    EVP_DigestUpdate(ctx_.get(), text.data(), text.size());
  }
  void add_raw(const char* data, std::size_t size) { EVP_DigestUpdate(ctx_.get(), data, size); }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest, &size);
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < size; ++i) {
      out += kDigits[digest[i] >> 4];
      out += kDigits[digest[i] & 15];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx_;
};

Result<void> hash_folder(int dir, const std::string& relative, Hasher& hash, int depth) {
  if (depth > 64)
    return tl::unexpected(Error{"the build context is nested too deep at " + relative});
  DIR* stream = fdopendir(dir);
  if (!stream) {
    close(dir);
    return tl::unexpected(Error{"cannot read " + relative + ": " + std::strerror(errno)});
  }
  std::vector<std::string> names;
  while (const dirent* d = readdir(stream))
    if (std::strcmp(d->d_name, ".") != 0 && std::strcmp(d->d_name, "..") != 0)
      names.emplace_back(d->d_name);
  std::sort(names.begin(), names.end());
  Result<void> done;
  for (const std::string& name : names) {
    const std::string path = relative.empty() ? name : relative + "/" + name;
    struct stat st {};
    if (fstatat(dirfd(stream), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    hash.add(path);
    hash.add(std::to_string(st.st_mode));
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      const ssize_t n = readlinkat(dirfd(stream), name.c_str(), target, sizeof target);
      hash.add(std::string(target, n > 0 ? static_cast<std::size_t>(n) : 0));
    } else if (S_ISDIR(st.st_mode)) {
      const int sub =
          openat(dirfd(stream), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) {
        done = tl::unexpected(Error{"cannot open " + path + ": " + std::strerror(errno)});
        break;
      }
      if (done = hash_folder(sub, path, hash, depth + 1); !done) break;
    } else if (S_ISREG(st.st_mode)) {
      const int fd = openat(dirfd(stream), name.c_str(),
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      struct stat opened {};
      if (fd < 0 || fstat(fd, &opened) != 0 || !S_ISREG(opened.st_mode)) {
        if (fd >= 0) close(fd);
        done = tl::unexpected(Error{"cannot read " + path + " of the build context"});
        break;
      }
      hash.add(std::to_string(opened.st_size));
      char buffer[65536];
      for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) > 0;)
        hash.add_raw(buffer, static_cast<std::size_t>(n));
      close(fd);
    }
    // Sockets, fifos and devices: their type and mode only (a build cannot copy their content).
  }
  closedir(stream);
  return done;
}

}  // namespace

Result<std::string> context_key(const std::string& context, const std::string& dockerfile,
                                const std::vector<std::string>& bases) {
  const int top = open(context.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (top < 0)
    return tl::unexpected(
        Error{"the build context " + context + " cannot be opened: " + std::strerror(errno)});
  Hasher hash;
  hash.add(kKeyVersion);
  for (const std::string& base : bases) hash.add(base + "\n");
  hash.add(dockerfile);
  if (auto hashed = hash_folder(top, "", hash, 0); !hashed) return tl::unexpected(hashed.error());
  return hash.hex();
}

}  // namespace warren::image::detail
