#include <algorithm>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "default_seccomp_policy.hpp"   // configs/seccomp/default.json, as text
#include "default_seccomp_program.hpp"  // the same, compiled at build time
#include "seccomp.hpp"

namespace warren::sandbox::detail {

// The default policy was compiled by warren-seccomp-compile at build time: compiling it in a
// fresh process costs about 0.8 ms (libseccomp's tables faulted in), most of a one-shot
// `warren sandbox exec`'s seccomp cost. The test Seccomp.BuiltInProgramIsTheDefaultPolicyCompiled
// holds the two equal.
SeccompCache::SeccompCache()
    : built_in_(std::make_shared<const SeccompProgram>(
          SeccompProgram{{std::begin(kDefaultSeccompProgram), std::end(kDefaultSeccompProgram)}})) {
}

// The default policy for a container's root (Privileges::Container) allows chroot, as Docker's
// default profile does for a container holding sys_chroot: sshd's privilege separation and
// package scripts chroot. It is harmless there: the sandbox's root is its own (pivot_root, the old
// root detached), so a chroot, or a way back out of one, never leads beyond it.
std::string container_policy_text() {
  nlohmann::json policy = nlohmann::json::parse(kDefaultSeccompPolicy);
  auto& deny = policy["deny"];
  deny.erase(std::remove(deny.begin(), deny.end(), "chroot"), deny.end());
  return policy.dump();
}

Result<std::shared_ptr<const SeccompProgram>> SeccompCache::get(const std::string& path,
                                                                Privileges privileges) {
  if (path.empty() && privileges == Privileges::None) return built_in_;
  if (path.empty()) {  // compiled on the first container's start, then kept
    std::lock_guard guard(lock_);
    if (!container_) {
      auto program =
          compile_seccomp_policy(container_policy_text(), "the built-in policy for containers");
      if (!program) return tl::unexpected(program.error());
      container_ = std::make_shared<const SeccompProgram>(std::move(*program));
    }
    return container_;
  }
  std::ifstream in(path);
  if (!in) return tl::unexpected(Error{"cannot read seccomp policy " + path});
  std::string text(std::istreambuf_iterator<char>(in), {});
  std::lock_guard guard(lock_);
  if (auto found = compiled_.find(text); found != compiled_.end()) return found->second;
  auto program = compile_seccomp_policy(text, path);
  if (!program) return tl::unexpected(program.error());
  auto shared = std::make_shared<const SeccompProgram>(std::move(*program));
  compiled_.emplace(std::move(text), shared);
  return shared;
}

}  // namespace warren::sandbox::detail
