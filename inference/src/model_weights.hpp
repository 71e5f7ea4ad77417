// The weights of each block of the model, bound to a checkpoint's tensors by their official
// names (docs/inference.md, "Checkpoint layout").
#pragma once

#include <array>
#include <optional>
#include <vector>

#include "weights.hpp"

namespace warren::inference {

// Stream mixing around a sublayer (mHC): [2hc + hc^2, hc*D] weights, a bias each, 3 scales.
struct HyperWeights {
  std::vector<float> fn, base, scale;
};

// Compresses blocks of `ratio` tokens into one entry of `dim` values.
struct CompressorWeights {
  int ratio = 0;
  std::int64_t dim = 0;
  Linear wkv, wgate;       // [coff * dim, D], BF16; coff 2 when blocks overlap (ratio 4)
  std::vector<float> ape;  // [ratio, coff * dim]: a bias by position in the block
  std::vector<float> norm;
};

struct AttentionWeights {
  Linear wq_a, wq_b, wkv, wo_a, wo_b;
  std::vector<float> q_norm, kv_norm, sink;
  std::optional<CompressorWeights> compressor;  // ratio > 0
  // The lightning indexer (ratio 4): its queries, per-head weights and key compressor.
  std::optional<Linear> index_wq_b, index_weights;
  std::optional<CompressorWeights> index_compressor;
};

struct ExpertWeights {
  Linear w1, w2, w3;  // gate, down, up
};

struct FfnWeights {
  Linear gate;                  // [E, D], BF16
  std::vector<float> bias;      // learned routing: added to scores for the choice only
  const std::int64_t* tid2eid;  // hash routing: [V, K] experts by token id; null otherwise
  std::vector<ExpertWeights> experts;
  std::optional<ExpertWeights> shared;
};

struct LayerWeights {
  int ratio = 0;  // 0 window-only, 4 CSA, 128 HCA
  std::vector<float> attn_norm, ffn_norm;
  HyperWeights hc_attn, hc_ffn;
  AttentionWeights attn;
  FfnWeights ffn;
};

struct ModelWeights {
  const std::uint16_t* embed = nullptr;  // [V, D] BF16
  Linear head;
  std::vector<float> norm;
  std::vector<float> hc_head_fn, hc_head_base, hc_head_scale;
  std::vector<LayerWeights> layers;  // the main layers (MTP layers are not run)
};

// Linear layers compute their rows on `pool`'s threads.
Result<ModelWeights> bind_weights(const Checkpoint& checkpoint, ThreadPool* pool, Kernels kernels);

}  // namespace warren::inference
