// The small operations the forward pass is made of, each as the architecture defines it
// (docs/v4-architecture.md): RMSNorm, RoPE with YaRN, the Hadamard rotation, the KV rows'
// quantisation, top-k with ties toward the lower index.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::inference {

// x = x / sqrt(mean(x^2) + eps) (* weight, when given), in place.
void rms_norm(std::span<double> x, std::span<const float> weight, double eps);

// Rotary embedding of interleaved pairs (2i, 2i+1) over `dims` dims. Window-only layers use
// rope_theta as it is; compressed layers compress_rope_theta with YaRN: each frequency blends
// freq / factor and freq along a linear ramp between the correction dims of beta_fast and
// beta_slow (DeepSeek's form, no magnitude factor).
class Rotary {
 public:
  Rotary(const Config& config, bool compressed_layer);
  // Rotates `x` (the last `dims` dims of a head) by position `pos`; backwards when `inverse`.
  void apply(std::span<double> x, std::int64_t pos, bool inverse = false) const;

 private:
  std::vector<double> freqs_;
};

// x = H x / sqrt(n), H the Sylvester Hadamard matrix of size n (a power of two), in place.
void hadamard(std::span<double> x);

// Indices of the k largest values, the lower index first among equals, largest first.
std::vector<std::int64_t> top_k(std::span<const double> values, std::int64_t k);

double sigmoid(double x);
double softplus(double x);

}  // namespace warren::inference
