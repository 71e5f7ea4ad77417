// Checkpoints: a random one in the official layout opens with every tensor its config implies,
// is the same for a seed, and each way a checkpoint can be broken is reported naming the tensor
// and the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "../cli/cli_util.hpp"
#include "formats.hpp"
#include "inventory.hpp"
#include "safetensors.hpp"
#include "warren/inference/model.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;
using warren::testing::slurp;

namespace {

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root = fs::temp_directory_path() / ("warren-checkpoint-" + std::to_string(getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  void TearDown() override { fs::remove_all(root); }

  std::string tiny(const std::string& name, std::uint64_t seed = 7) {
    const std::string dir = (root / name).string();
    auto written = inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir, seed);
    EXPECT_TRUE(written) << written.error().message;
    return dir;
  }

  struct Tensor {
    std::string name;
    inf::DType dtype;
    std::vector<std::int64_t> shape;
    std::string bytes;
  };
  // A copy of `from` in one shard with an index, each tensor passed through `edit` (false
  // leaves it out), then `extra` added.
  std::string rewrite(const std::string& from, const std::string& name,
                      const std::function<bool(Tensor&)>& edit, std::vector<Tensor> extra = {}) {
    auto checkpoint = inf::Checkpoint::open(from);
    EXPECT_TRUE(checkpoint) << checkpoint.error().message;
    std::vector<Tensor> tensors;
    for (const auto& t : checkpoint->tensors()) {
      Tensor copy{std::string(t.name), t.dtype, t.shape,
                  std::string(reinterpret_cast<const char*>(t.data.data()), t.data.size())};
      if (edit(copy)) tensors.push_back(std::move(copy));
    }
    for (auto& t : extra) tensors.push_back(std::move(t));
    const fs::path dir = root / name;
    fs::create_directories(dir);
    fs::copy_file(fs::path(from) / "config.json", dir / "config.json");
    std::vector<inf::PlannedTensor> planned;
    nlohmann::json map = nlohmann::json::object();
    for (const auto& t : tensors) {
      planned.push_back({t.name, t.dtype, t.shape});
      map[t.name] = "one.safetensors";
    }
    auto written = inf::write_safetensors(
        (dir / "one.safetensors").string(), planned, [&](std::size_t i, std::FILE* out) {
          std::fwrite(tensors[i].bytes.data(), 1, tensors[i].bytes.size(), out);
        });
    EXPECT_TRUE(written);
    std::ofstream(dir / "model.safetensors.index.json")
        << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump();
    return dir.string();
  }

  static std::string error_of(const std::string& dir) {
    auto checkpoint = inf::Checkpoint::open(dir);
    return checkpoint ? "(opened)" : checkpoint.error().message;
  }

  fs::path root;
};

}  // namespace

TEST_F(Checkpoint, ATinyRandomCheckpointHoldsEveryTensorItsConfigImplies) {
  const std::string dir = tiny("tiny");
  auto checkpoint = inf::Checkpoint::open(dir);
  ASSERT_TRUE(checkpoint) << checkpoint.error().message;
  const auto inventory = inf::checkpoint_inventory(checkpoint->config());
  EXPECT_EQ(checkpoint->tensors().size(), inventory.size());
  // Window-only, CSA and HCA layers, the hash-routed first layer, the MTP layer.
  EXPECT_TRUE(checkpoint->tensor("layers.1.attn.indexer.compressor.ape"));
  EXPECT_FALSE(checkpoint->tensor("layers.0.attn.compressor.ape"));
  EXPECT_EQ(checkpoint->tensor("layers.2.attn.compressor.ape")->shape,
            (std::vector<std::int64_t>{128, 128}));
  EXPECT_EQ(checkpoint->tensor("layers.1.attn.compressor.ape")->shape,
            (std::vector<std::int64_t>{4, 256}));
  EXPECT_EQ(checkpoint->tensor("layers.0.ffn.gate.tid2eid")->dtype, inf::DType::I64);
  EXPECT_FALSE(checkpoint->tensor("layers.0.ffn.gate.bias"));
  EXPECT_EQ(checkpoint->tensor("layers.3.ffn.experts.7.w2.weight")->shape,
            (std::vector<std::int64_t>{256, 64}));  // FP4, two a byte
  EXPECT_EQ(checkpoint->tensor("layers.3.ffn.experts.7.w2.scale")->shape,
            (std::vector<std::int64_t>{256, 4}));  // one scale per 32 inputs
  EXPECT_EQ(checkpoint->tensor("mtp.0.e_proj.weight")->dtype, inf::DType::F8_E4M3);
  // Sharded, with an index; under 50 MB in all.
  std::set<std::string> shards;
  std::uint64_t bytes = 0;
  for (const auto& t : checkpoint->tensors()) shards.emplace(t.file), bytes += t.data.size();
  EXPECT_GE(shards.size(), 2u);
  EXPECT_LT(bytes, 50'000'000u);
  EXPECT_EQ(inf::describe(*checkpoint).file_bytes, bytes);
}

TEST_F(Checkpoint, RandomWeightsAreInRangeForAForwardPass) {
  auto checkpoint = inf::Checkpoint::open(tiny("tiny"));
  ASSERT_TRUE(checkpoint);
  const auto& c = checkpoint->config();
  auto norm = checkpoint->tensor("layers.1.attn.kv_norm.weight");
  for (std::size_t i = 0; i < norm->data.size(); i += 2) {
    std::uint16_t bits;
    std::memcpy(&bits, norm->data.data() + i, 2);
    const float v = inf::formats::bf16_to_float(bits);
    EXPECT_TRUE(v > 0.89f && v < 1.11f) << v;
  }
  auto wq = checkpoint->tensor("layers.1.attn.wq_a.weight");
  for (std::byte b : wq->data)
    EXPECT_FALSE(std::isnan(inf::formats::e4m3_to_float(static_cast<std::uint8_t>(b))));
  auto routes = checkpoint->tensor("layers.0.ffn.gate.tid2eid");
  const auto* ids = reinterpret_cast<const std::int64_t*>(routes->data.data());
  for (std::int64_t token = 0; token < c.vocab_size; ++token) {
    std::set<std::int64_t> experts(ids + token * c.num_experts_per_tok,
                                   ids + (token + 1) * c.num_experts_per_tok);
    EXPECT_EQ(experts.size(), static_cast<std::size_t>(c.num_experts_per_tok)) << token;
    EXPECT_GE(*experts.begin(), 0);
    EXPECT_LT(*experts.rbegin(), c.n_routed_experts);
  }
}

TEST_F(Checkpoint, ASeedGivesTheSameBytesAndAnotherSeedOthers) {
  const std::string a = tiny("a", 7), b = tiny("b", 7), other = tiny("other", 8);
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(a)) {
    const auto name = entry.path().filename();
    EXPECT_EQ(slurp(entry.path()), slurp(fs::path(b) / name)) << name;
    if (name.extension() == ".safetensors") {
      EXPECT_NE(slurp(entry.path()), slurp(fs::path(other) / name)) << name;
      ++files;
    }
  }
  EXPECT_GE(files, 2u);
}

TEST_F(Checkpoint, EachBrokenTensorIsNamedWithItsFile) {
  const std::string good = tiny("good");
  EXPECT_EQ(error_of(rewrite(good, "same", [](Tensor&) { return true; })), "(opened)");
  EXPECT_EQ(
      error_of(rewrite(good, "missing",
                       [](Tensor& t) { return t.name != "layers.1.attn.indexer.wq_b.scale"; })),
      "tensor layers.1.attn.indexer.wq_b.scale: missing from " + (root / "missing").string() +
          " (config.json implies it)");
  EXPECT_EQ(error_of(rewrite(good, "misshapen",
                             [](Tensor& t) {
                               if (t.name == "layers.2.attn.compressor.ape") t.shape = {256, 64};
                               return true;
                             })),
            "one.safetensors: tensor layers.2.attn.compressor.ape: shape [256, 64], expected "
            "[128, 128]");
  EXPECT_EQ(error_of(rewrite(good, "mistyped",
                             [](Tensor& t) {
                               if (t.name == "layers.0.attn.attn_sink") {
                                 t.dtype = inf::DType::BF16;
                                 t.bytes.resize(t.bytes.size() / 2);
                               }
                               return true;
                             })),
            "one.safetensors: tensor layers.0.attn.attn_sink: dtype BF16, expected F32");
  EXPECT_EQ(error_of(rewrite(good, "extra", [](Tensor&) { return true; },
                             {{"layers.9.attn.wq_a.weight", inf::DType::BF16, {2}, "abcd"}})),
            "one.safetensors: tensor layers.9.attn.wq_a.weight: not a tensor of this config "
            "(config.json does not imply it)");

  // Truncated: the last tensor's bytes run past the end of the file.
  const std::string cut = rewrite(good, "truncated", [](Tensor&) { return true; });
  const fs::path shard = fs::path(cut) / "one.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 100);
  const std::string error = error_of(cut);
  EXPECT_EQ(error.rfind("one.safetensors: tensor ", 0), 0u) << error;
  EXPECT_NE(error.find(": truncated: its bytes ["), std::string::npos) << error;

  // The index names a shard that lacks a tensor it lists there.
  const std::string listed = rewrite(good, "listed", [](Tensor&) { return true; });
  auto index = nlohmann::json::parse(slurp(fs::path(listed) / "model.safetensors.index.json"));
  index["weight_map"]["layers.8.ghost"] = "one.safetensors";
  std::ofstream(fs::path(listed) / "model.safetensors.index.json") << index.dump();
  EXPECT_EQ(error_of(listed),
            "one.safetensors: tensor layers.8.ghost: missing (model.safetensors.index.json "
            "lists it there)");
  // A shard named by a path is refused before anything is opened.
  index["weight_map"]["layers.8.ghost"] = "../../etc/passwd";
  std::ofstream(fs::path(listed) / "model.safetensors.index.json") << index.dump();
  EXPECT_NE(error_of(listed).find("tensor layers.8.ghost: its shard is not a file name"),
            std::string::npos);
}

TEST_F(Checkpoint, AFolderThatIsNoCheckpointSaysWhy) {
  fs::create_directories(root / "empty");
  EXPECT_EQ(error_of((root / "empty").string()),
            (root / "empty").string() + ": not a checkpoint (no config.json)");
  EXPECT_EQ(error_of((root / "nowhere").string()), (root / "nowhere").string() + ": not a folder");
  const std::string dir = tiny("noshards");
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename() != "config.json") fs::remove(entry.path());
  EXPECT_EQ(error_of(dir), dir +
                               ": not a checkpoint (no model.safetensors.index.json or "
                               "model.safetensors)");
  // A header that is not one.
  const std::string junk = tiny("junk");
  const std::string header("\x10\0\0\0\0\0\0\0not json at all!", 24);
  const fs::path first = fs::path(junk) / "model-00001-of-00003.safetensors";
  ASSERT_TRUE(fs::exists(first));
  std::ofstream(first, std::ios::trunc) << header;
  EXPECT_EQ(error_of(junk),
            "model-00001-of-00003.safetensors: not a safetensors file: its header is not a JSON "
            "object");
}

TEST_F(Checkpoint, WritingIntoAFolderWithACheckpointIsRefused) {
  const std::string dir = tiny("twice");
  auto again = inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir, 1);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().message, dir + ": already holds a checkpoint (config.json)");
}
