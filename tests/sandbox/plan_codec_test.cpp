// The plan travels to the spawner as bytes: what arrives must be what was sent, and damaged bytes
// must be refused rather than half-read. No root needed.
#include <gtest/gtest.h>

#include <string>

#include "plan.hpp"

namespace warren::sandbox::detail {
namespace {

ChildPlan sample(Strings& strings, std::vector<sock_filter>& filter) {
  ChildPlan plan;
  plan.new_root = strings.keep("/run/warren/sandbox-root");
  plan.before_pivot.push_back({FsStep::Mount, strings.keep("/r/usr"), strings.keep("/usr"), nullptr,
                               4096, nullptr, 0755, false});
  plan.before_pivot.push_back(
      {FsStep::Mkdir, strings.keep("/r/tmp"), nullptr, nullptr, 0, nullptr, 01777, true});
  // The tree's descriptor is not in the bytes: it travels beside them.
  plan.before_pivot.push_back(
      {FsStep::Attach, strings.keep("workspace"), strings.keep("/home/me/repo")});
  plan.before_pivot.back().tree = 9;
  plan.after_pivot.push_back({FsStep::RemountReadOnly, strings.keep("/proc/sys")});
  plan.hostname = strings.keep("sandbox");
  plan.loopback_up = true;
  plan.workdir = strings.keep("/workspace");
  plan.terminal = true;
  plan.recycle = true;
  plan.last_capability = 40;
  plan.argv = {const_cast<char*>(strings.keep("sh")), const_cast<char*>(strings.keep("-c")),
               const_cast<char*>(strings.keep(std::string("a\0b", 3))), nullptr};
  plan.envp = {const_cast<char*>(strings.keep("PATH=/bin")), nullptr};
  plan.search_path = strings.keep("/bin");
  plan.rlimits = {{RLIMIT_CORE, {0, 0}}, {RLIMIT_NOFILE, {1024, 4096}}};
  filter = {{0x20, 0, 0, 4}, {0x06, 0, 0, 0x7fff0000}};
  plan.seccomp = {static_cast<unsigned short>(filter.size()), filter.data()};
  return plan;
}

TEST(PlanCodec, RoundTripKeepsEveryField) {
  Strings strings, decoded_strings;
  std::vector<sock_filter> filter, decoded_filter;
  const ChildPlan plan = sample(strings, filter);
  ChildPlan back;
  ASSERT_TRUE(decode_plan(encode_plan(plan), back, decoded_strings, decoded_filter));
  EXPECT_STREQ(back.new_root, plan.new_root);
  ASSERT_EQ(back.before_pivot.size(), 3u);
  EXPECT_EQ(back.before_pivot[0].kind, FsStep::Mount);
  EXPECT_STREQ(back.before_pivot[0].source, "/usr");
  EXPECT_EQ(back.before_pivot[0].fstype, nullptr);
  EXPECT_EQ(back.before_pivot[0].flags, 4096u);
  EXPECT_EQ(back.before_pivot[1].mode, 01777u);
  EXPECT_TRUE(back.before_pivot[1].optional);
  EXPECT_EQ(back.before_pivot[2].kind, FsStep::Attach);
  EXPECT_STREQ(back.before_pivot[2].source, "/home/me/repo");
  EXPECT_EQ(back.before_pivot[2].tree, -1);
  ASSERT_EQ(back.after_pivot.size(), 1u);
  EXPECT_EQ(back.after_pivot[0].kind, FsStep::RemountReadOnly);
  EXPECT_STREQ(back.hostname, "sandbox");
  EXPECT_TRUE(back.loopback_up);
  EXPECT_STREQ(back.workdir, "/workspace");
  EXPECT_TRUE(back.terminal);
  EXPECT_TRUE(back.recycle);
  EXPECT_EQ(back.last_capability, 40);
  ASSERT_EQ(back.argv.size(), 4u);
  EXPECT_STREQ(back.argv[1], "-c");
  EXPECT_EQ(back.argv[3], nullptr);
  ASSERT_EQ(back.envp.size(), 2u);
  EXPECT_STREQ(back.envp[0], "PATH=/bin");
  ASSERT_EQ(back.rlimits.size(), 2u);
  EXPECT_EQ(back.rlimits[1].value.rlim_max, 4096u);
  ASSERT_EQ(back.seccomp.len, 2);
  EXPECT_EQ(back.seccomp.filter[1].k, 0x7fff0000u);
}

TEST(PlanCodec, DamagedBytesAreRefused) {
  Strings strings;
  std::vector<sock_filter> filter;
  const std::string bytes = encode_plan(sample(strings, filter));
  for (std::size_t cut : {std::size_t{0}, std::size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    Strings s;
    std::vector<sock_filter> f;
    ChildPlan plan;
    EXPECT_FALSE(decode_plan(bytes.substr(0, cut), plan, s, f)) << "cut at " << cut;
  }
  Strings s;
  std::vector<sock_filter> f;
  ChildPlan plan;
  EXPECT_FALSE(decode_plan(bytes + "x", plan, s, f)) << "trailing bytes";
  std::string wrong = bytes;
  wrong[0] ^= 1;
  EXPECT_FALSE(decode_plan(wrong, plan, s, f)) << "wrong magic";
}

}  // namespace
}  // namespace warren::sandbox::detail
