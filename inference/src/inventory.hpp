// The tensors a DeepSeek-V4 checkpoint holds, derived from its config: names, dtypes and shapes
// as the official checkpoints have them (docs/v4-architecture.md, "Checkpoint tensors"). The
// loader checks a checkpoint against this list and `model init` writes exactly this list, so the
// two can never disagree about the layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::inference {

// What a tensor is for, which decides whether a decoded token reads it.
enum class TensorRole {
  Embedding,     // one row per token
  Head,          // the output projection: every row, every token
  Dense,         // read whole for every token (attention, norms, gates, shared experts)
  RoutedExpert,  // read for the tokens routed to its expert
  Mtp,           // the next-token-prediction layers: not run by the engine yet
};

struct TensorSpec {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  TensorRole role;
};

std::vector<TensorSpec> checkpoint_inventory(const Config& config);

std::uint64_t element_count(const std::vector<std::int64_t>& shape);

}  // namespace warren::inference
