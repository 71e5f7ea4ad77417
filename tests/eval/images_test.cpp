// prepare_images (eval.hpp): the images of a suite's tasks settled before it returns, each task
// with its image's layers or the reason its build failed. Builds run buildah as root (CI runs as
// root); elsewhere these tests skip.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../image/mini_root.hpp"
#include "host_probe.hpp"
#include "warren/eval/eval.hpp"
#include "warren/image/image.hpp"

namespace warren::eval {
namespace {

namespace fs = std::filesystem;

using warren::testing::write;

// A Harbor task whose environment is `dockerfile`.
void harbor_task(const fs::path& dir, const std::string& dockerfile) {
  write(dir / "task.toml", "[agent]\ntimeout_sec = 60.0\n");
  write(dir / "instruction.md", "Do it.\n");
  write(dir / "tests" / "test.sh", "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n");
  write(dir / "environment" / "Dockerfile", dockerfile);
}

TEST(PrepareImages, EveryTaskIsSettledWhenItReturns) {
  WARREN_REQUIRE_ROOT();
  const fs::path root =
      fs::temp_directory_path() / ("warren-images-test-" + std::to_string(getpid()));
  fs::remove_all(root);
  auto store = image::Store::open((root / "images").string());
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(warren::testing::make_mini_root(root / "mini"));
  ASSERT_TRUE(store->import("local/mini:1", (root / "mini").string()));
  harbor_task(root / "suite" / "built", "FROM local/mini:1\nRUN echo made > /made\nWORKDIR /app\n");
  harbor_task(root / "suite" / "broken", "FROM local/mini:1\nRUN exit 7\n");
  auto suite = load_suite((root / "suite").string());
  ASSERT_TRUE(suite) << suite.error().message;
  std::vector<Task*> tasks;
  for (Task& t : *suite) tasks.push_back(&t);
  EvalSettings settings;
  settings.images = (root / "images").string();
  std::vector<std::string> lines;
  prepare_images(tasks, settings, [&](const std::string& line) { lines.push_back(line); });

  const Task& broken = (*suite)[0];
  const Task& built = (*suite)[1];
  EXPECT_TRUE(broken.load_error.starts_with("broken: the image build failed ("))
      << broken.load_error;
  EXPECT_TRUE(broken.environment.image.layers.empty());
  EXPECT_EQ(built.load_error, "");
  ASSERT_FALSE(built.environment.image.layers.empty());
  EXPECT_TRUE(fs::exists(fs::path(built.environment.image.layers.front()) / "made"));
  EXPECT_EQ(built.environment.image.workdir, "/app");
  EXPECT_EQ(lines.size(), 3u);  // two builds begun, one built
  (void)store->prune(true);
  fs::remove_all(root);
}

}  // namespace
}  // namespace warren::eval
