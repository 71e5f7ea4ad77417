// The forward pass of one token, the plain reference path: each block as a function of its
// weights, the token's input and the sequence's cache, in the order the architecture runs them
// (docs/v4-architecture.md). Activations are double: in float, a value next to an FP8 or BF16
// rounding boundary rounds to a different code often enough to change an indexer's or a router's
// choice within a few hundred tokens, and the reference is what faster paths are checked against.
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "blocks.hpp"
#include "kv_cache.hpp"
#include "model_weights.hpp"

namespace warren::inference {

// A compressor's state in one sequence: the tokens of the block being filled (and of the block
// before, which overlapping CSA blocks mix in), and the entries of the complete blocks.
struct CompressorState {
  std::vector<std::vector<double>> a, g;            // kv and gate projections, this block
  std::vector<std::vector<double>> prev_a, prev_g;  // the block before
  PackedRows entries;                               // one per complete block, compact
};

// One layer's cache in one sequence: a plain value, so that a copy is a snapshot.
struct LayerCache {
  explicit LayerCache(const Config& c);
  PackedRows window;  // the last sliding_window KV rows
  CompressorState kv, index;
};

// The rotary tables: window-only layers, and layers with compressed attention (YaRN).
struct Rotaries {
  Rotary window, compressed;
  const Rotary& of(int ratio) const { return ratio == 0 ? window : compressed; }
};

// Values of several tokens, one vector each.
using Batch = std::vector<std::vector<double>>;

// The tokens' values one after another, as a linear layer takes several inputs.
inline std::vector<double> flatten(const Batch& x) {
  std::vector<double> all;
  for (const auto& v : x) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// Where a token goes: its sequence's layers' caches and its position there.
struct Place {
  std::vector<LayerCache>* layers;
  std::int64_t position;
};

// Attention of layer `layer` for tokens at their places (a prompt's, one after another in one
// sequence, or one token of each of several sequences) at their normed inputs `x` (each [D]):
// each [D]. Their projections are computed together; each token, in order, attends to its
// sequence's cache as the ones before it left it.
Batch attention_block(const Config& c, const LayerWeights& w, const Rotaries& rope,
                      std::span<const Place> places, std::size_t layer, const Batch& x);

// The MoE FFN for the tokens `tokens` at their normed inputs `x` (each [D]): each [D]. Each expert
// runs once on all the tokens that chose it.
Batch moe_block(const Config& c, const FfnWeights& w, const Batch& x,
                std::span<const std::int32_t> tokens);

// A sublayer over a batch: each token's normed input to its output [D].
using Sublayer = std::function<Batch(const Batch&)>;

// One sublayer with its hyper-connections, for each token: its `streams` [hc * D] mixed, normed
// with `norm` and fed to `sublayer`, the output spread back over the streams.
void hyper_connected(const Config& c, const HyperWeights& w, std::span<const float> norm,
                     Batch& streams, const Sublayer& sublayer);

// The logits of the last position from its streams.
std::vector<double> head_block(const Config& c, const ModelWeights& w,
                               std::span<const double> streams);

}  // namespace warren::inference
