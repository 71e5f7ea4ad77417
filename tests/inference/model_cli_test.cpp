// `warren model init|info` as a user runs them: a checkpoint written and described, in text and
// JSON, and bad input refused in one line with exit 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "../cli/cli_util.hpp"

namespace warren::testing {
namespace {

namespace fs = std::filesystem;

class ModelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("warren-model-cli-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }
  fs::path root;
};

TEST_F(ModelCli, InitWritesACheckpointThatInfoDescribes) {
  const std::string dir = (root / "tiny").string();
  const Outcome init = warren("model init --preset tiny --out " + dir + " --seed 3 --json");
  ASSERT_EQ(init.status, 0) << init.err;
  const auto made = nlohmann::json::parse(init.out);
  EXPECT_EQ(made["preset"], "tiny");
  EXPECT_EQ(made["seed"], 3);
  EXPECT_GT(made["parameters"].get<std::uint64_t>(), 1'000'000u);
  EXPECT_LT(made["active_parameters"].get<std::uint64_t>(),
            made["parameters"].get<std::uint64_t>());
  EXPECT_TRUE(fs::exists(fs::path(dir) / "model.safetensors.index.json"));

  const Outcome info = warren("model info --weights " + dir + " --json");
  ASSERT_EQ(info.status, 0) << info.err;
  const auto described = nlohmann::json::parse(info.out);
  for (const char* field : {"parameters", "active_parameters", "bytes", "bytes_by_dtype",
                            "active_weight_bytes", "kv_bytes_per_token", "kv_fixed_bytes"})
    EXPECT_EQ(described[field], made[field]) << field;
  // Tiny's layers: CSA, HCA, CSA with 128-dim heads (64 no-RoPE, 64 RoPE) and 128-dim indexer
  // keys: an entry is 64 + 1 + 128 = 193 bytes, padded to 200; an indexer key 64 + 4.
  EXPECT_DOUBLE_EQ(described["kv_bytes_per_token"].get<double>(),
                   2 * (200 + 68) / 4.0 + 200 / 128.0);
  std::uint64_t by_dtype = 0;
  for (const auto& [dtype, n] : described["bytes_by_dtype"].items())
    by_dtype += n.get<std::uint64_t>();
  EXPECT_EQ(by_dtype, described["bytes"].get<std::uint64_t>());
  // The shards hold the tensors' bytes and their headers.
  std::uintmax_t shard_bytes = 0;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors") shard_bytes += entry.file_size();
  EXPECT_GT(shard_bytes, described["bytes"].get<std::uint64_t>());

  const Outcome text = warren("model info --weights " + dir);
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("layers              4 (2 CSA, 1 HCA, 1 window-only) + 1 MTP"),
            std::string::npos)
      << text.out;
}

TEST_F(ModelCli, BadInputIsOneLineAndExit2) {
  const Outcome preset = warren("model init --preset huge --out " + (root / "x").string());
  EXPECT_EQ(preset.status, 2);
  EXPECT_EQ(preset.err, "warren model init: unknown preset huge (tiny, small or flash-slice)\n");
  EXPECT_FALSE(fs::exists(root / "x"));
  const Outcome folder = warren("model info --weights " + root.string());
  EXPECT_EQ(folder.status, 2);
  EXPECT_EQ(folder.err,
            "warren model info: " + root.string() + ": not a checkpoint (no config.json)\n");
  const Outcome missing = warren("model info");
  EXPECT_EQ(missing.status, 2);
  EXPECT_EQ(std::count(missing.err.begin(), missing.err.end(), '\n'), 1) << missing.err;
}

}  // namespace
}  // namespace warren::testing
