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

// sum a[i] b[i] in a fixed order: lane i mod 8 sums its products in turn, then the lanes are added
// in a fixed tree. Eight independent chains: with one, each addition waited on the one before,
// and attention's scores and the hyper-connections' mixes ran at a third of the speed.
template <class A>
double dot(std::span<const A> a, std::span<const double> b) {
  double lane[8] = {};
  const std::size_t n = a.size(), whole = n - n % 8;
  for (std::size_t i = 0; i < whole; i += 8)
    for (std::size_t k = 0; k < 8; ++k) lane[k] += static_cast<double>(a[i + k]) * b[i + k];
  for (std::size_t i = whole; i < n; ++i) lane[i - whole] += static_cast<double>(a[i]) * b[i];
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

double sigmoid(double x);
double softplus(double x);

}  // namespace warren::inference
