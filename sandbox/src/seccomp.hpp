// seccomp through libseccomp: a JSON policy (configs/seccomp/) compiled in the parent into a BPF
// program that the child installs just before exec. Compiling costs about 0.2 ms, so programs are
// cached by policy text; the built-in policy's is compiled when Warren is built.
#pragma once

#include <linux/filter.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

struct SeccompProgram {
  std::vector<sock_filter> instructions;
  sock_fprog program() const {
    return {static_cast<unsigned short>(instructions.size()),
            const_cast<sock_filter*>(instructions.data())};  // the kernel only reads it
  }
};

// `text` is the JSON policy; `source` says where it came from, for errors.
Result<SeccompProgram> compile_seccomp_policy(const std::string& text, const std::string& source);

class SeccompCache {
 public:
  SeccompCache();
  // `path` empty: the built-in default (configs/seccomp/default.json, compiled in), or for a
  // container's root (`privileges` Container) the same less its refusal of chroot.
  Result<std::shared_ptr<const SeccompProgram>> get(const std::string& path,
                                                    Privileges privileges = Privileges::None);

 private:
  const std::shared_ptr<const SeccompProgram> built_in_;
  std::mutex lock_;
  std::map<std::string, std::shared_ptr<const SeccompProgram>> compiled_;  // by policy text
  std::shared_ptr<const SeccompProgram> container_;  // the built-in policy less chroot
};

}  // namespace warren::sandbox::detail
