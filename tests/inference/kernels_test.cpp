// The fast row kernels against the reference path's rows, tensor by tensor of a random
// checkpoint: every linear layer's output with the reference path (double) and with each kernel
// set this CPU runs, on a random input, quantised as the model quantises it and not.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "safetensors.hpp"
#include "weights.hpp"

namespace inf = warren::inference;
namespace fs = std::filesystem;

namespace {

TEST(Kernels, EveryLinearLayerGivesTheReferencePathsOutput) {
  const fs::path dir = fs::temp_directory_path() / ("warren-kernels-" + std::to_string(getpid()));
  fs::remove_all(dir);
  ASSERT_TRUE(inf::write_random_checkpoint(inf::preset_config(inf::Preset::Tiny), dir.string(), 3));
  auto checkpoint = inf::Checkpoint::open(dir.string());
  ASSERT_TRUE(checkpoint) << checkpoint.error().message;
  std::mt19937 rng(11);
  std::normal_distribution<double> normal;
  int checked = 0;
  for (const inf::TensorView& tensor : checkpoint->tensors()) {
    const std::string name(tensor.name);
    if (!name.ends_with(".weight") || tensor.shape.size() != 2) continue;
    const std::string base = name.substr(0, name.size() - 7);
    auto reference = inf::Linear::bind(*checkpoint, base);
    if (!reference || reference->in() % 32 != 0) continue;  // not a linear layer, or no kernel
    std::vector<double> x(static_cast<std::size_t>(reference->in()));
    for (double& v : x) v = normal(rng);
    for (bool quantise : {false, true}) {
      std::vector<double> want(static_cast<std::size_t>(reference->out()));
      reference->apply(x, want, quantise);
      for (inf::Kernels kernels : {inf::Kernels::Avx2, inf::Kernels::Avx512}) {
        if (!inf::supported(kernels)) continue;
        auto fast = inf::Linear::bind(*checkpoint, base, nullptr, kernels);
        ASSERT_TRUE(fast);
        std::vector<double> got(want.size());
        fast->apply(x, got, quantise);
        double diff = 0, norm = 0;
        for (std::size_t i = 0; i < want.size(); ++i) {
          diff += (got[i] - want[i]) * (got[i] - want[i]);
          norm += want[i] * want[i];
        }
        EXPECT_LE(std::sqrt(diff / norm), 1e-13)
            << base << " " << to_string(kernels) << (quantise ? " quantised" : "");
      }
    }
    ++checked;
  }
  EXPECT_GT(checked, 20);
  fs::remove_all(dir);
}

}  // namespace
