#include <fstream>
#include <iterator>

#include "default_seccomp_program.hpp"  // configs/seccomp/default.json, compiled at build time
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

Result<std::shared_ptr<const SeccompProgram>> SeccompCache::get(const std::string& path) {
  if (path.empty()) return built_in_;
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
