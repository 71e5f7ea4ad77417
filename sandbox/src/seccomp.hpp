// seccomp through libseccomp: a JSON policy (configs/seccomp/) compiled in the parent into a BPF
// program that the child installs just before exec.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "warren/sandbox/sandbox.hpp"

namespace warren::sandbox::detail {

struct SeccompProgram {
  std::vector<sock_filter> instructions;
  sock_fprog program() {
    return {static_cast<unsigned short>(instructions.size()), instructions.data()};
  }
};

// `path` empty: the built-in default (configs/seccomp/default.json, compiled in).
Result<SeccompProgram> compile_seccomp_policy(const std::string& path);

}  // namespace warren::sandbox::detail
