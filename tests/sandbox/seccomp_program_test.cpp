// The default seccomp program is compiled at build time (sandbox/src/seccomp_cache.cpp); these
// hold it to the policy it was compiled from.
#include <gtest/gtest.h>

#include <cstring>

#include "default_seccomp_policy.hpp"
#include "seccomp.hpp"

namespace warren::sandbox::detail {
namespace {

TEST(Seccomp, BuiltInProgramIsTheDefaultPolicyCompiled) {
  SeccompCache cache;
  auto built_in = cache.get("");
  ASSERT_TRUE(built_in) << built_in.error().message;
  auto compiled = compile_seccomp_policy(kDefaultSeccompPolicy, "the built-in policy");
  ASSERT_TRUE(compiled) << compiled.error().message;
  const auto& a = (*built_in)->instructions;
  const auto& b = compiled->instructions;
  ASSERT_GT(b.size(), 50u);  // a real policy, not an empty program
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(sock_filter)), 0);
}

TEST(Seccomp, APolicyFileIsCompiledAndCachedByItsText) {
  SeccompCache cache;
  const std::string path = ::testing::TempDir() + "/policy.json";
  FILE* file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs(kDefaultSeccompPolicy, file);
  std::fclose(file);
  auto first = cache.get(path), second = cache.get(path);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->get(), second->get());
  EXPECT_EQ((*first)->instructions.size(), (*cache.get(""))->instructions.size());
  EXPECT_FALSE(cache.get(path + ".missing"));
}

}  // namespace
}  // namespace warren::sandbox::detail
