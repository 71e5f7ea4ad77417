// `warren eval` on a SWE-bench instance with no local checkout, as a user runs the official
// dataset: the instance's image pulled by its official name from a registry (here Debian's
// docker-registry on loopback, mirroring docker.io/swebench), the repository at /testbed with
// conda's testbed environment active, graded with the harness's test command and log parser for
// the instance's repository and version. Needs root (CI runs as root).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../image/loopback_registry.hpp"
#include "../image/mini_root.hpp"
#include "../sandbox/host_probe.hpp"
#include "cli_util.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The output of `command`, run by bash in `dir`; "" when it fails.
std::string shell(const fs::path& dir, const std::string& command) {
  const fs::path out = dir.string() + ".out";
  const int status = std::system(
      ("cd '" + dir.string() + "' && (" + command + ") > '" + out.string() + "'").c_str());
  std::string text = status == 0 ? slurp(out) : "";
  fs::remove(out);
  return text;
}

class SweCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WARREN_REQUIRE_ROOT();
    ASSERT_EQ(system("command -v docker-registry >/dev/null"), 0)
        << "scripts/setup.sh installs docker-registry";
    state = fs::temp_directory_path() / ("warren-swe-cli-" + std::to_string(getpid()));
    fs::remove_all(state);
    fs::create_directories(state);
  }
  void TearDown() override {
    if (state.empty()) return;
    for (const char* store : {"images", "publisher"})
      (void)warren_via("WARREN_IMAGES=" + (state / store).string() + " " + WARREN_BINARY +
                       " image prune --bases");
    fs::remove_all(state);
  }
  // A Django-shaped repository whose runner prints unittest's verbose lines, Django's format: its
  // base commit, the gold patch and the test patch (made by git, as the dataset's are).
  struct Instance {
    std::string base, patch, test_patch;
  };
  Instance make_repo(const fs::path& repo) const {
    write(repo / "calc" / "__init__.py",
          "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n");
    write(repo / "tests" / "runtests.py",
          "#!/usr/bin/env python\nimport os, sys, unittest\n"
          "here = os.path.dirname(os.path.abspath(__file__))\n"
          "sys.path[:0] = [os.path.dirname(here), here]\n"
          "names, args = [], iter(sys.argv[1:])\n"
          "for a in args:\n"
          "    if a in ('--verbosity', '--parallel'):\n        next(args)\n"
          "    elif not a.startswith('-'):\n        names.append(a)\n"
          "suite = unittest.defaultTestLoader.loadTestsFromNames(names)\n"
          "ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()\n"
          "sys.exit(0 if ok else 1)\n");
    fs::permissions(repo / "tests" / "runtests.py", fs::perms::owner_exec, fs::perm_options::add);
    write(repo / "tests" / "calc_tests" / "__init__.py", "");
    const std::string tests =
        "import unittest\n\nfrom calc import sub\n\n\nclass CalcTests(unittest.TestCase):\n"
        "    def test_sub(self):\n        self.assertEqual(sub(3, 1), 2)\n";
    write(repo / "tests" / "calc_tests" / "tests.py", tests);
    Instance made;
    made.base = shell(repo,
                      "git init -q && git add -A && git -c user.name=t -c user.email=t@t commit "
                      "-qm base && git rev-parse HEAD");
    if (!made.base.empty()) made.base.pop_back();
    write(repo / "tests" / "calc_tests" / "tests.py",
          "import unittest\n\nfrom calc import add, sub\n\n\nclass CalcTests(unittest.TestCase):\n"
          "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
          "    def test_sub(self):\n        self.assertEqual(sub(3, 1), 2)\n");
    made.test_patch = shell(repo, "git diff && git checkout -q -- .");
    write(repo / "calc" / "__init__.py",
          "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n");
    made.patch = shell(repo, "git diff && git checkout -q -- .");
    return made;
  }
  Outcome warren_in(const std::string& store, const std::string& args) const {
    return warren_via("CONTAINERS_REGISTRIES_CONF=" + conf + " WARREN_IMAGES=" +
                      (state / store).string() + " " + WARREN_BINARY + " " + args);
  }
  fs::path state;
  std::string conf;
};

TEST_F(SweCli, AnInstanceRunsOnItsImagePulledByItsOfficialName) {
  LoopbackRegistry registry(state / "registry", "docker.io");
  conf = registry.registries_conf();
  const Instance made = make_repo(state / "repo");
  ASSERT_FALSE(made.base.empty());
  ASSERT_FALSE(made.patch.empty());
  ASSERT_FALSE(made.test_patch.empty());
  // The instance's image, published under the name the harness gives django__django-90001.
  ASSERT_TRUE(make_swe_root(state / "root", state / "repo"));
  auto imported = warren_in(
      "publisher", "image import local/swe:1 " + (state / "root").string() + " --workdir /testbed");
  ASSERT_EQ(imported.status, 0) << imported.err;
  const std::string published =
      registry.address() + "/swebench/sweb.eval.x86_64.django_1776_django-90001:latest";
  const std::string push = "CONTAINERS_REGISTRIES_CONF=" + conf + " buildah --root " +
                           (state / "publisher" / "storage").string() + " --runroot " +
                           (state / "publisher" / "run").string() +
                           " --storage-driver overlay push --quiet local/swe:1 docker://" +
                           published + " >/dev/null";
  ASSERT_EQ(system(push.c_str()), 0) << push;

  const Json instance = {{"instance_id", "django__django-90001"},
                         {"repo", "django/django"},
                         {"version", "4.0"},
                         {"base_commit", made.base},
                         {"problem_statement", "add() subtracts."},
                         {"patch", made.patch},
                         {"test_patch", made.test_patch},
                         {"FAIL_TO_PASS", "[\"test_add (calc_tests.tests.CalcTests.test_add)\"]"},
                         {"PASS_TO_PASS", "[\"test_sub (calc_tests.tests.CalcTests.test_sub)\"]"}};
  write(state / "suite" / "instances.jsonl", instance.dump() + "\n");
  const std::string suite = (state / "suite" / "instances.jsonl").string();
  const std::string db = " --json --db " + (state / "w.db").string();

  auto oracle = warren_in("images", "eval " + suite + " --agent oracle" + db);
  ASSERT_EQ(oracle.status, 0) << oracle.err;
  EXPECT_NE(oracle.err.find("pulling docker.io/swebench/sweb.eval.x86_64.django_1776_django-90001"),
            std::string::npos)
      << oracle.err;
  const Json report = Json::parse(oracle.out);
  EXPECT_EQ(report["resolved"], 1) << oracle.out;
  EXPECT_EQ(report["never_ran"], 0) << oracle.out;

  // nop: the image is not pulled again; the Django runner's FAIL, read by the Django parser.
  auto nop = warren_in("images", "eval " + suite + " --agent nop" + db);
  EXPECT_EQ(nop.status, 0) << nop.err;
  EXPECT_EQ(Json::parse(nop.out)["resolved"], 0) << nop.out;
  EXPECT_EQ(nop.err.find("pulling "), std::string::npos) << nop.err;
  EXPECT_EQ(Json::parse(nop.out)["tasks"][0]["attempts"][0]["message"],
            "test_add (calc_tests.tests.CalcTests.test_add) FAILED")
      << nop.out;

  // The pulled image is the store's, listed with where it came from.
  auto listed = warren_in("images", "image list --json");
  ASSERT_EQ(listed.status, 0) << listed.err;
  const Json all = Json::parse(listed.out);
  ASSERT_EQ(all.size(), 1u) << listed.out;
  EXPECT_EQ(all[0]["source"],
            "docker://docker.io/swebench/sweb.eval.x86_64.django_1776_django-90001:latest");
  EXPECT_EQ(all[0]["workdir"], "/testbed");

  // A short name is Docker Hub's, as Docker reads it: swe-short:1 is
  // docker.io/library/swe-short:1, here from the mirror; once pulled it is found by either name.
  const std::string short_push = "CONTAINERS_REGISTRIES_CONF=" + conf + " buildah --root " +
                                 (state / "publisher" / "storage").string() + " --runroot " +
                                 (state / "publisher" / "run").string() +
                                 " --storage-driver overlay push --quiet local/swe:1 docker://" +
                                 registry.address() + "/library/swe-short:1 >/dev/null";
  ASSERT_EQ(system(short_push.c_str()), 0) << short_push;
  auto short_pull = warren_in("images", "image pull swe-short:1");
  EXPECT_EQ(short_pull.status, 0) << short_pull.err;
  EXPECT_NE(short_pull.err.find("pulling docker.io/library/swe-short:1"), std::string::npos)
      << short_pull.err;
  EXPECT_TRUE(short_pull.out.starts_with("swe-short:1 ")) << short_pull.out;

  // Once the registry is gone, an instance whose image is not here is not run, and says why.
  registry.stop();
  Json other = instance;
  other["instance_id"] = "django__django-90002";
  write(state / "suite" / "instances.jsonl", other.dump() + "\n");
  auto refused = warren_in("images", "eval " + suite + " --agent oracle" + db);
  EXPECT_EQ(refused.status, 1) << refused.err;
  const std::string why = Json::parse(refused.out)["tasks"][0]["load_error"];
  EXPECT_TRUE(
      why.starts_with("the image docker.io/swebench/sweb.eval.x86_64.django_1776_django-"
                      "90002:latest cannot be pulled here ("))
      << why;
}

}  // namespace
}  // namespace warren::testing
